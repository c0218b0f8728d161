package netstack

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/poll"
)

// hostNet stands in for the router's host network in forwarding tests:
// every address the stack dials reaches a loopback echo server (TCP and
// UDP), and each dial is recorded.
type hostNet struct {
	tcp  net.Listener
	udp  net.PacketConn
	open atomic.Int32 // TCP connections the echo server holds

	mu     sync.Mutex
	dialed []string
	refuse map[string]bool // destinations whose dial is refused
}

func newHostNet(t *testing.T) *hostNet {
	t.Helper()
	h := &hostNet{refuse: map[string]bool{}}
	var err error
	if h.tcp, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if h.udp, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			c, err := h.tcp.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			h.open.Add(1)
			go func() {
				defer wg.Done()
				defer h.open.Add(-1)
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			n, from, err := h.udp.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = h.udp.WriteTo(append([]byte("echo "), buf[:n]...), from)
		}
	}()
	t.Cleanup(func() {
		h.tcp.Close()
		h.udp.Close()
		wg.Wait()
	})
	return h
}

func (h *hostNet) dial(ctx context.Context, network, address string) (net.Conn, error) {
	h.mu.Lock()
	h.dialed = append(h.dialed, network+" "+address)
	refuse := h.refuse[address]
	h.mu.Unlock()
	if refuse {
		return nil, syscall.ECONNREFUSED
	}
	var d net.Dialer
	if network == "udp" {
		return d.DialContext(ctx, "udp", h.udp.LocalAddr().String())
	}
	return d.DialContext(ctx, "tcp", h.tcp.Addr().String())
}

func (h *hostNet) dials() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.dialed)
}

var routed = []netip.Prefix{netip.MustParsePrefix("10.20.0.0/24"), netip.MustParsePrefix("fd00:20::/64")}

func inRoutes(a netip.Addr) bool {
	return slices.ContainsFunc(routed, func(p netip.Prefix) bool { return p.Contains(a) })
}

// routerPair is pair with b forwarding for routed.
func routerPair(t *testing.T, cfg Forwarding) (a, b *Stack, h *hostNet) {
	t.Helper()
	h = newHostNet(t)
	if cfg.Allowed == nil {
		cfg.Allowed = inRoutes
	}
	cfg.Dial = h.dial
	b, err := New(Config{Addresses: []netip.Addr{addrB4, addrB6}, Forward: &cfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	a, b = wired(t, newStack(t, addrA4, addrA6), b, nil)
	return a, b, h
}

// TestForwardTCP: a connection to an address inside b's routes is
// terminated by b and dialled from the host; data flows both ways, for
// IPv4 and IPv6; b's own services still answer.
func TestForwardTCP(t *testing.T) {
	a, b, h := routerPair(t, Forwarding{})
	serveEcho(t, b, 7)
	for _, dst := range []string{"10.20.0.5:5432", "[fd00:20::5]:443"} {
		echo(t, a, netip.MustParseAddrPort(dst), bigPayload)
	}
	echo(t, a, netip.AddrPortFrom(addrB4, 7), []byte("b itself"))
	if got, want := h.dials(), []string{"tcp 10.20.0.5:5432", "tcp [fd00:20::5]:443"}; !slices.Equal(got, want) {
		t.Fatalf("host dials %v, want %v", got, want)
	}
}

// TestForwardRefuses: outside the routes, to the host's own link-local
// or mesh addresses (whatever Allowed says), to a closed port of b
// itself, and when the destination refuses, the source gets a reset;
// loopback gets no answer; nothing else is dialled.
func TestForwardRefuses(t *testing.T) {
	a, _, h := routerPair(t, Forwarding{Allowed: func(dst netip.Addr) bool { return dst != netip.MustParseAddr("10.30.0.5") }})
	h.refuse["10.20.0.9:80"] = true
	// Loopback destinations are dropped by the stack itself, unanswered.
	for _, dst := range []string{"127.0.0.1:22", "[::1]:22"} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		c, err := a.DialContext(ctx, "tcp", netip.MustParseAddrPort(dst))
		cancel()
		if err == nil {
			c.Close()
			t.Errorf("dial %s through the router succeeded", dst)
		}
	}
	for _, dst := range []string{"10.30.0.5:80", "169.254.169.254:80", "100.64.0.9:22",
		"[fd7a:115c:a1e0::9]:22", netip.AddrPortFrom(addrB4, 9).String(), "10.20.0.9:80"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := a.DialContext(ctx, "tcp", netip.MustParseAddrPort(dst))
		cancel()
		if err == nil {
			c.Close()
			t.Errorf("dial %s through the router succeeded", dst)
			continue
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dial %s: %v, want a reset (connection refused)", dst, err)
		}
	}
	if got, want := h.dials(), []string{"tcp 10.20.0.9:80"}; !slices.Equal(got, want) {
		t.Fatalf("host dials %v, want only %v", got, want)
	}
}

// TestForwardUDP: a UDP flow to a routed address is relayed from the host
// socket and back.
func TestForwardUDP(t *testing.T) {
	a, _, h := routerPair(t, Forwarding{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := a.DialContext(ctx, "udp", netip.MustParseAddrPort("10.20.0.53:53"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 100)
	for i := range 3 {
		msg := []byte{'q', byte('0' + i)}
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != "echo "+string(msg) {
			t.Fatalf("reply %d: %q, %v", i, buf[:n], err)
		}
	}
	// One flow, one host socket.
	if got := h.dials(); !slices.Equal(got, []string{"udp 10.20.0.53:53"}) {
		t.Fatalf("host dials %v", got)
	}
}

// TestForwardBounds: past MaxTCP open connections a new one is reset;
// once one closes, another gets through. An idle UDP flow ends and a new
// datagram opens a new one.
func TestForwardBounds(t *testing.T) {
	a, _, h := routerPair(t, Forwarding{MaxTCP: 1, UDPIdle: 50 * time.Millisecond})
	dst := netip.MustParseAddrPort("10.20.0.5:80")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first, err := a.DialContext(ctx, "tcp", dst)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := a.DialContext(ctx, "tcp", dst); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("a second connection past MaxTCP 1: %v, want a reset", err)
	}
	first.Close()
	var c net.Conn
	for c == nil { // the first connection's slot frees once b sees it close
		c, err = a.DialContext(ctx, "tcp", dst)
		if err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			t.Fatal("the slot of a closed connection never freed")
		}
	}
	c.Close()

	u, err := a.DialContext(ctx, "udp", netip.MustParseAddrPort("10.20.0.53:53"))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	buf := make([]byte, 100)
	for len(h.dials()) < 4 { // 2 TCP dials so far, then one UDP flow, then another after idling
		if _, err := u.Write([]byte("q")); err != nil {
			t.Fatal(err)
		}
		_ = u.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, _ = u.Read(buf)
		if ctx.Err() != nil {
			t.Fatalf("no new UDP flow after idling: dials %v", h.dials())
		}
		time.Sleep(100 * time.Millisecond) // longer than UDPIdle: the flow ends
	}
}

// TestForwardClose: closing the stack ends forwarded connections: the
// host side is closed (TestMain checks no goroutine is left).
func TestForwardClose(t *testing.T) {
	a, b, h := routerPair(t, Forwarding{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := a.DialContext(ctx, "tcp", netip.MustParseAddrPort("10.20.0.5:80"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	if h.open.Load() != 1 {
		t.Fatalf("%d host connections open, want 1", h.open.Load())
	}
	b.Close()
	poll.UntilTrue(t, 10*time.Second, "the host side to close", func() bool { return h.open.Load() == 0 })
}
