package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTimeout bounds every blocking step of a test so a bug fails instead
// of hanging.
const testTimeout = 10 * time.Second

// startEcho runs a TCP echo server on network ("tcp4" or "tcp6") loopback
// and returns its address; it stops at test cleanup.
func startEcho(t testing.TB, network string) netip.AddrPort {
	t.Helper()
	host := "127.0.0.1:0"
	if network == "tcp6" {
		host = "[::1]:0"
	}
	ln, err := net.Listen(network, host)
	if err != nil {
		t.Skipf("cannot listen on %s loopback (%v); skipping", network, err)
	}
	return serveConns(t, ln, func(c net.Conn) {
		_, _ = io.Copy(c, c)
		closeWrite(c)
	})
}

// startSink runs a TCP server that discards what it reads and, at EOF,
// writes back the byte count as text.
func startSink(t testing.TB) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveConns(t, ln, func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c)
		fmt.Fprintf(c, "%d", n)
		closeWrite(c)
	})
}

// serveConns accepts on ln and runs handle per connection until cleanup,
// which closes ln and every connection and waits for the goroutines.
func serveConns(t testing.TB, ln net.Listener, handle func(net.Conn)) netip.AddrPort {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Go(func() {
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					_ = c.Close()
				}()
				handle(c)
			})
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t testing.TB) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := ln.Addr().(*net.TCPAddr).AddrPort()
	_ = ln.Close()
	return ap
}

// mapResolver resolves the names in m and reports ErrUnknownHost for
// others.
func mapResolver(m map[string]netip.Addr) Resolver {
	return func(_ context.Context, host string) (netip.Addr, error) {
		if a, ok := m[host]; ok {
			return a, nil
		}
		return netip.Addr{}, fmt.Errorf("resolve %q: %w", host, ErrUnknownHost)
	}
}

// plainDialer dials over the host's loopback, standing in for a netstack.
func plainDialer() Dialer {
	var d net.Dialer
	return func(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error) {
		return d.DialContext(ctx, network, addr.String())
	}
}

// blockingDialer blocks every dial until its context ends, announcing each
// dial on started (if not nil).
func blockingDialer(started chan<- netip.AddrPort) Dialer {
	return func(ctx context.Context, _ string, addr netip.AddrPort) (net.Conn, error) {
		if started != nil {
			started <- addr
		}
		<-ctx.Done()
		return nil, fmt.Errorf("dial %s: %w", addr, ctx.Err())
	}
}

// startProxy runs a Server on 127.0.0.1 with cfg (plain dialer if Dial is
// nil; adjust, if set, edits the Server before it serves) and returns it
// with its address. Cleanup closes it and checks Serve returned nil.
func startProxy(t testing.TB, cfg Config, adjust func(*Server)) (*Server, string) {
	t.Helper()
	if cfg.Dial == nil {
		cfg.Dial = plainDialer()
	}
	if cfg.Resolve == nil {
		cfg.Resolve = mapResolver(nil)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if adjust != nil {
		adjust(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve after Close = %v, want nil", err)
		}
	})
	return s, ln.Addr().String()
}

// dialProxy connects to the proxy with a deadline and closes at cleanup.
func dialProxy(t testing.TB, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	return c.(*net.TCPConn)
}

// encodeSOCKSRequest is the inverse of ParseSOCKSRequest (RSV zero).
func encodeSOCKSRequest(r SOCKSRequest) []byte {
	b := []byte{socksVersion, r.Cmd, 0}
	switch {
	case r.Host != "":
		b = append(b, socksATYPDomain, byte(len(r.Host)))
		b = append(b, r.Host...)
	case r.Addr.Is4():
		b = append(b, socksATYPIPv4)
		b = append(b, r.Addr.AsSlice()...)
	default:
		b = append(b, socksATYPIPv6)
		b = append(b, r.Addr.AsSlice()...)
	}
	return append(b, byte(r.Port>>8), byte(r.Port))
}

// socksReplyMsg is a parsed SOCKS reply.
type socksReplyMsg struct {
	code byte
	bnd  netip.AddrPort
}

// readSOCKSReply reads VER REP RSV ATYP BND.ADDR BND.PORT.
func readSOCKSReply(r io.Reader) (socksReplyMsg, error) {
	var b [4]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return socksReplyMsg{}, fmt.Errorf("read reply: %w", err)
	}
	if b[0] != socksVersion || b[2] != 0 {
		return socksReplyMsg{}, fmt.Errorf("bad reply header % x", b)
	}
	var n int
	switch b[3] {
	case socksATYPIPv4:
		n = 4
	case socksATYPIPv6:
		n = 16
	default:
		return socksReplyMsg{}, fmt.Errorf("bad reply ATYP %#x", b[3])
	}
	a := make([]byte, n+2)
	if _, err := io.ReadFull(r, a); err != nil {
		return socksReplyMsg{}, fmt.Errorf("read reply address: %w", err)
	}
	ip, _ := netip.AddrFromSlice(a[:n])
	return socksReplyMsg{code: b[1], bnd: netip.AddrPortFrom(ip, uint16(a[n])<<8|uint16(a[n+1]))}, nil
}

// socksDial greets the proxy with no-auth, sends req and returns the conn
// and the reply.
func socksDial(t testing.TB, proxyAddr string, req SOCKSRequest) (*net.TCPConn, socksReplyMsg) {
	t.Helper()
	c := dialProxy(t, proxyAddr)
	msg := append([]byte{socksVersion, 1, socksMethodNoAuth}, encodeSOCKSRequest(req)...)
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	var m [2]byte
	if _, err := io.ReadFull(c, m[:]); err != nil {
		t.Fatalf("read method reply: %v", err)
	}
	if m != [2]byte{socksVersion, socksMethodNoAuth} {
		t.Fatalf("method reply % x, want 05 00", m)
	}
	rep, err := readSOCKSReply(c)
	if err != nil {
		t.Fatal(err)
	}
	return c, rep
}

// checkEcho sends a message over c (connected to an echo server), half-closes
// and checks the same bytes come back followed by EOF.
func checkEcho(t testing.TB, c net.Conn, r io.Reader) {
	t.Helper()
	if r == nil {
		r = c
	}
	msg := bytes.Repeat([]byte("warren mesh "), 1000)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		if err == nil {
			err = c.(interface{ CloseWrite() error }).CloseWrite()
		}
		errc <- err
	}()
	got, err := io.ReadAll(r)
	if werr := <-errc; werr != nil {
		t.Fatalf("write: %v", werr)
	}
	if err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo returned %d bytes, want %d", len(got), len(msg))
	}
}

// exchange writes in to a fresh proxy connection, half-closes it, and
// returns everything the proxy sent until it closed.
func exchange(t testing.TB, proxyAddr string, in []byte) []byte {
	t.Helper()
	c := dialProxy(t, proxyAddr)
	if _, err := c.Write(in); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after %q: %v", in, err)
	}
	return out
}
