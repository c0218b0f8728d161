package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"testing"
)

func TestNewRequiresDialAndResolve(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no dialer", Config{Resolve: mapResolver(nil)}},
		{"no resolver", Config{Dial: plainDialer()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil {
				t.Fatal("New succeeded; want an error")
			}
		})
	}
}

// fakeListener is a Listener with a chosen address that never accepts.
type fakeListener struct{ addr net.Addr }

func (l fakeListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (l fakeListener) Close() error              { return nil }
func (l fakeListener) Addr() net.Addr            { return l.addr }

// pipeAddr is a non-IP address, as an in-memory listener would have.
type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// stringAddr is an IP address not of type *net.TCPAddr.
type stringAddr struct{ network, addr string }

func (a stringAddr) Network() string { return a.network }
func (a stringAddr) String() string  { return a.addr }

func TestServeRefusesNonLoopback(t *testing.T) {
	tcp := func(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	tests := []struct {
		name    string
		addr    net.Addr
		refused bool
	}{
		{"ipv4 loopback", tcp("127.0.0.1:1080"), false},
		{"other 127/8", tcp("127.0.0.53:1080"), false},
		{"ipv6 loopback", tcp("[::1]:1080"), false},
		{"mapped loopback", tcp("[::ffff:127.0.0.1]:1080"), false},
		{"unix socket", &net.UnixAddr{Name: "/run/warren/proxy.sock", Net: "unix"}, false},
		{"in-memory", pipeAddr{}, false},
		{"wildcard v4", tcp("0.0.0.0:1080"), true},
		{"wildcard v6", tcp("[::]:1080"), true},
		{"lan", tcp("192.168.1.20:1080"), true},
		{"mesh address", tcp("100.64.0.7:1080"), true},
		{"tcp addr of another type", stringAddr{"tcp", "10.0.0.1:1080"}, true},
		{"unparsable tcp addr", stringAddr{"tcp", "somewhere"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := RequireLoopback(tt.addr)
			if got := errors.Is(err, ErrNotLoopback); got != tt.refused {
				t.Fatalf("RequireLoopback(%v) = %v; refused=%v, want %v", tt.addr, err, got, tt.refused)
			}
			if !tt.refused {
				return
			}
			s, err := New(Config{Dial: plainDialer(), Resolve: mapResolver(nil)})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Serve(fakeListener{tt.addr}); !errors.Is(err, ErrNotLoopback) {
				t.Fatalf("Serve = %v, want ErrNotLoopback", err)
			}
		})
	}
}

func TestServeReturnsErrorWhenListenerClosedElsewhere(t *testing.T) {
	s, err := New(Config{Dial: plainDialer(), Resolve: mapResolver(nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	_ = ln.Close()
	if err := <-served; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Serve = %v, want net.ErrClosed", err)
	}
}

func TestMaxConns(t *testing.T) {
	echo := startEcho(t, "tcp4")
	done := make(chan struct{}, 16)
	s, addr := startProxy(t, Config{MaxConns: 1, Resolve: mapResolver(map[string]netip.Addr{"db": echo.Addr()})},
		func(s *Server) { s.testHookConnDone = func() { done <- struct{}{} } })
	connect := SOCKSRequest{Cmd: socksCmdConnect, Host: "db", Port: echo.Port()}

	first, rep := socksDial(t, addr, connect)
	if rep.code != socksSucceeded {
		t.Fatalf("first client: reply %#x", rep.code)
	}

	// While first holds the only slot, SOCKS and HTTP clients are refused.
	if _, rep := socksDial(t, addr, connect); rep.code != socksGeneralFailure {
		t.Fatalf("SOCKS client over MaxConns: reply %#x, want general failure", rep.code)
	}
	out := exchange(t, addr, fmt.Appendf(nil, "CONNECT db:%d HTTP/1.1\r\n\r\n", echo.Port()))
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), nil)
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("HTTP client over MaxConns: %q, %v; want 503", out, err)
	}
	if st := s.Stats(); st.Active != 1 || st.Refused != 2 || st.Accepted != 3 {
		t.Fatalf("stats %+v, want 1 active, 2 refused, 3 accepted", st)
	}

	checkEcho(t, first, nil) // ends the first connection
	<-done
	second, rep := socksDial(t, addr, connect)
	if rep.code != socksSucceeded {
		t.Fatalf("after the first client left: reply %#x, want success", rep.code)
	}
	checkEcho(t, second, nil)
}

func TestStatsCountBytes(t *testing.T) {
	echo := startEcho(t, "tcp4")
	done := make(chan struct{}, 1)
	s, addr := startProxy(t, Config{}, func(s *Server) { s.testHookConnDone = func() { done <- struct{}{} } })
	c, rep := socksDial(t, addr, SOCKSRequest{Cmd: socksCmdConnect, Addr: echo.Addr(), Port: echo.Port()})
	if rep.code != socksSucceeded {
		t.Fatalf("reply %#x", rep.code)
	}
	checkEcho(t, c, nil)
	<-done
	st := s.Stats()
	const n = 12000 // checkEcho's message
	if st.BytesOut != n || st.BytesIn != n || st.Active != 0 || st.Accepted != 1 {
		t.Fatalf("stats %+v, want %d bytes each way, nothing active", st, n)
	}
}

func TestCloseUnblocksEverything(t *testing.T) {
	echo := startEcho(t, "tcp4")
	dialing := make(chan netip.AddrPort, 1)
	slow := netip.MustParseAddr("100.64.0.9")
	blocking := blockingDialer(dialing)
	plain := plainDialer()
	s, err := New(Config{
		Resolve: mapResolver(nil),
		Dial: func(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error) {
			if addr.Addr() == slow {
				return blocking(ctx, network, addr)
			}
			return plain(ctx, network, addr)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	addr := ln.Addr().String()

	idle := dialProxy(t, addr) // sends nothing: stuck in the handshake
	stuck := dialProxy(t, addr)
	if _, err := stuck.Write(append([]byte{5, 1, 0}, encodeSOCKSRequest(SOCKSRequest{Cmd: 1, Addr: slow, Port: 80})...)); err != nil {
		t.Fatal(err)
	}
	<-dialing // stuck is now waiting on the dialer
	tunnel, rep := socksDial(t, addr, SOCKSRequest{Cmd: socksCmdConnect, Addr: echo.Addr(), Port: echo.Port()})
	if rep.code != socksSucceeded {
		t.Fatalf("reply %#x", rep.code)
	}
	if _, err := tunnel.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(tunnel, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve after Close = %v, want nil", err)
	}
	for name, c := range map[string]net.Conn{"idle": idle, "dialing": stuck, "tunnel": tunnel} {
		// Whatever was sent before (method reply), the conn must end.
		if _, err := io.ReadAll(c); err != nil && !isReset(err) {
			t.Errorf("%s client: read after Close: %v", name, err)
		}
	}
	if st := s.Stats(); st.Active != 0 {
		t.Errorf("active after Close = %d", st.Active)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		_ = c.Close()
		t.Errorf("listener still accepting after Close")
	}
	if err := s.Serve(ln); err != nil {
		t.Errorf("Serve after Close = %v, want nil", err)
	}
}

// isReset reports a connection reset, which is how a conn closed with
// unread input may end.
func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }
