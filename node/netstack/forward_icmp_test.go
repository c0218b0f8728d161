package netstack

import (
	"context"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"time"
)

// pingRecorder stands in for the host's ping in forwarding tests: the
// destinations in up answer, and every ping is recorded.
type pingRecorder struct {
	up []netip.Addr

	mu     sync.Mutex
	pinged []netip.Addr
}

func (p *pingRecorder) ping(ctx context.Context, dst netip.Addr, payload []byte) error {
	p.mu.Lock()
	p.pinged = append(p.pinged, dst)
	p.mu.Unlock()
	if slices.Contains(p.up, dst) {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

func (p *pingRecorder) calls() []netip.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.pinged)
}

func pingOnce(a *Stack, dst string, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, err := a.Ping(ctx, netip.MustParseAddr(dst))
	return err
}

// TestForwardEcho: an echo request to an address behind the router is
// answered only when the host's ping of that address is, with the
// source's own identifier and payload (Stack.Ping checks both); an
// address that does not answer, one outside the routes and the host's
// own networks get no reply and, outside the routes, no ping at all; the
// router still answers for itself.
func TestForwardEcho(t *testing.T) {
	p := &pingRecorder{up: []netip.Addr{netip.MustParseAddr("10.20.0.5"), netip.MustParseAddr("fd00:20::5")}}
	a, _, _ := routerPair(t, Forwarding{Ping: p.ping, EchoTimeout: 300 * time.Millisecond})
	for _, dst := range []string{"10.20.0.5", "fd00:20::5", addrB4.String(), addrB6.String()} {
		if err := pingOnce(a, dst, 10*time.Second); err != nil {
			t.Errorf("ping %s through the router: %v", dst, err)
		}
	}
	// Before, gVisor in promiscuous mode answered ICMPv6 echo for any
	// routed address itself.
	for _, dst := range []string{"10.20.0.99", "fd00:20::99", "10.30.0.5", "169.254.169.254", "100.64.0.9"} {
		if err := pingOnce(a, dst, 500*time.Millisecond); err == nil {
			t.Errorf("ping %s through the router was answered", dst)
		}
	}
	want := []string{"10.20.0.5", "fd00:20::5", "10.20.0.99", "fd00:20::99"}
	var got []string
	for _, d := range p.calls() {
		got = append(got, d.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("the host pinged %v, want %v", got, want)
	}
}

// TestForwardEchoBounded: past MaxICMP requests in flight, more are
// dropped without a ping.
func TestForwardEchoBounded(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	pings := 0
	slow := func(ctx context.Context, dst netip.Addr, payload []byte) error {
		mu.Lock()
		pings++
		mu.Unlock()
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	a, _, _ := routerPair(t, Forwarding{Ping: slow, MaxICMP: 2, EchoTimeout: time.Minute})
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = pingOnce(a, netip.AddrFrom4([4]byte{10, 20, 0, byte(10 + i)}).String(), 2*time.Second)
		}()
	}
	wg.Wait()
	close(release)
	mu.Lock()
	defer mu.Unlock()
	if pings != 2 {
		t.Fatalf("%d pings ran, want the bound of 2", pings)
	}
}

// TestHostPing pings the host's loopback with the real HostPing.
func TestHostPing(t *testing.T) {
	if os.Geteuid() != 0 {
		if b, err := os.ReadFile("/proc/sys/net/ipv4/ping_group_range"); err != nil || string(b) == "1\t0\n" {
			t.Skip("needs root or unprivileged ICMP sockets (net.ipv4.ping_group_range)")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, dst := range []string{"127.0.0.1", "::1"} {
		if err := HostPing(ctx, netip.MustParseAddr(dst), []byte("warren-host-ping")); err != nil {
			t.Errorf("HostPing(%s): %v", dst, err)
		}
	}
}

// echoPacket builds an echo request from src to dst, as a peer would send.
func echoPacket(src, dst netip.Addr, payload []byte) []byte {
	pkt, _ := buildEcho(true, src, dst, 7, 9, payload)
	return pkt
}

// FuzzParseEcho: parseEcho never panics on hostile bytes, and what it
// accepts is an echo request whose reply the router can build.
func FuzzParseEcho(f *testing.F) {
	f.Add(echoPacket(addrA4, netip.MustParseAddr("10.20.0.5"), []byte("hello")))
	f.Add(echoPacket(addrA6, netip.MustParseAddr("fd00:20::5"), []byte("hello")))
	f.Add([]byte{0x45})
	f.Add([]byte{0x60, 0, 0, 0, 0, 8, 58})
	f.Fuzz(func(t *testing.T, p []byte) {
		req, ok := parseEcho(p)
		if !ok {
			return
		}
		if req.src.Is4() != req.dst.Is4() || len(req.payload) > len(p) {
			t.Fatalf("parseEcho(%x) = %+v", p, req)
		}
		reply, _ := buildEcho(false, req.dst, req.src, req.id, req.seq, req.payload)
		if back, ok := parseEcho(reply); ok {
			t.Fatalf("the reply to %+v parses as a request: %+v", req, back)
		}
		again, _ := buildEcho(true, req.src, req.dst, req.id, req.seq, req.payload)
		if back, ok := parseEcho(again); !ok || back.src != req.src || back.dst != req.dst || !slices.Equal(back.payload, req.payload) {
			t.Fatalf("a rebuilt request %+v parses as %+v, %v", req, back, ok)
		}
	})
}
