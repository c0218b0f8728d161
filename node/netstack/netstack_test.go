package netstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

var (
	addrA4 = netip.MustParseAddr("100.64.0.1")
	addrB4 = netip.MustParseAddr("100.64.0.2")
	addrA6 = netip.MustParseAddr("fd7a:115c:a1e0::1")
	addrB6 = netip.MustParseAddr("fd7a:115c:a1e0::2")
)

// newStack starts a stack that is closed when the test ends.
func newStack(tb testing.TB, addrs ...netip.Addr) *Stack {
	tb.Helper()
	s, err := New(Config{Addresses: addrs})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// pair returns two stacks wired back to back in memory: what one sends,
// the other receives, as WireGuard would carry it.
func pair(tb testing.TB) (a, b *Stack) {
	tb.Helper()
	return pairInspect(tb, nil)
}

// pairInspect is pair with inspect, if not nil, called on every packet on
// the wire.
func pairInspect(tb testing.TB, inspect func([]byte)) (a, b *Stack) {
	tb.Helper()
	return wired(tb, newStack(tb, addrA4, addrA6), newStack(tb, addrB4, addrB6), inspect)
}

// wired connects a and b back to back (see pairInspect).
func wired(tb testing.TB, a, b *Stack, inspect func([]byte)) (*Stack, *Stack) {
	tb.Helper()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); wire(a, b, inspect) }()
	go func() { defer wg.Done(); wire(b, a, inspect) }()
	tb.Cleanup(func() {
		a.Close()
		b.Close()
		wg.Wait()
	})
	return a, b
}

// wire moves packets from src to dst until src is closed, calling
// inspect, if not nil, on each.
func wire(src, dst *Stack, inspect func([]byte)) {
	const offset = 16 // like WireGuard's header room
	bufs := make([][]byte, src.BatchSize())
	out := make([][]byte, src.BatchSize())
	sizes := make([]int, src.BatchSize())
	for i := range bufs {
		bufs[i] = make([]byte, offset+65535)
	}
	for {
		n, err := src.Read(bufs, sizes, offset)
		if err != nil {
			return
		}
		for i := 0; i < n; i++ {
			out[i] = bufs[i][:offset+sizes[i]]
			if inspect != nil {
				inspect(out[i][offset:])
			}
		}
		_, _ = dst.Write(out[:n], offset)
	}
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no addresses", Config{}},
		{"zero address", Config{Addresses: []netip.Addr{{}}}},
		{"MTU too small", Config{Addresses: []netip.Addr{addrA4}, MTU: 100}},
		{"MTU too small for IPv6", Config{Addresses: []netip.Addr{addrA4, addrA6}, MTU: 1200}},
		{"MTU too large", Config{Addresses: []netip.Addr{addrA4}, MTU: 70000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, err := New(tt.cfg); err == nil {
				s.Close()
				t.Fatal("New succeeded")
			}
		})
	}
}

// serveEcho echoes every connection accepted on port of s.
func serveEcho(tb testing.TB, s *Stack, port uint16) {
	tb.Helper()
	ln, err := s.ListenTCP(port)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
}

// echo sends payload to dst through s and checks it comes back.
func echo(t *testing.T, s *Stack, dst netip.AddrPort, payload []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := s.DialContext(ctx, "tcp", dst)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		errc <- err
	}()
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("echoed bytes differ")
	}
}

// bigPayload is ~2 MB: many segments, cut by the link endpoint and
// coalesced by GRO.
var bigPayload = bytes.Repeat([]byte("warren "), 300_000)

func TestTCPEcho(t *testing.T) {
	a, b := pair(t)
	serveEcho(t, b, 7)
	for _, dst := range []netip.Addr{addrB4, addrB6} {
		t.Run(dst.String(), func(t *testing.T) { echo(t, a, netip.AddrPortFrom(dst, 7), bigPayload) })
	}
}

// TestWirePacketsValid checks what the stack gives WireGuard: no packet
// larger than the MTU, and valid IP headers and TCP checksums (the link
// endpoint cuts large segments and completes their checksums).
func TestWirePacketsValid(t *testing.T) {
	var tcpPackets atomic.Int64
	check := func(p []byte) {
		if len(p) > DefaultMTU {
			t.Errorf("packet of %d bytes exceeds the MTU", len(p))
		}
		var src, dst tcpip.Address
		var seg []byte
		switch header.IPVersion(p) {
		case header.IPv4Version:
			ip := header.IPv4(p)
			if !ip.IsValid(len(p)) || !ip.IsChecksumValid() || int(ip.TotalLength()) != len(p) {
				t.Errorf("invalid IPv4 header % x", p[:header.IPv4MinimumSize])
				return
			}
			if ip.TransportProtocol() != header.TCPProtocolNumber {
				return
			}
			src, dst, seg = ip.SourceAddress(), ip.DestinationAddress(), ip.Payload()
		case header.IPv6Version:
			ip := header.IPv6(p)
			if !ip.IsValid(len(p)) || int(ip.PayloadLength())+header.IPv6MinimumSize != len(p) {
				t.Errorf("invalid IPv6 header % x", p[:header.IPv6MinimumSize])
				return
			}
			if ip.TransportProtocol() != header.TCPProtocolNumber {
				return
			}
			src, dst, seg = ip.SourceAddress(), ip.DestinationAddress(), ip.Payload()
		default:
			t.Errorf("packet of IP version %d", header.IPVersion(p))
			return
		}
		xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(len(seg)))
		if checksum.Checksum(seg, xsum) != 0xffff {
			t.Errorf("bad TCP checksum in %d-byte packet to %s", len(p), dst)
		}
		tcpPackets.Add(1)
	}
	a, b := pairInspect(t, check)
	serveEcho(t, b, 7)
	for _, dst := range []netip.Addr{addrB4, addrB6} {
		t.Run(dst.String(), func(t *testing.T) { echo(t, a, netip.AddrPortFrom(dst, 7), bigPayload) })
	}
	if n, min := tcpPackets.Load(), int64(4*len(bigPayload)/DefaultMTU); n < min {
		t.Errorf("saw %d TCP packets, want at least %d", n, min)
	}
}

// TestManyFlows runs several transfers at once, so that WireGuard's batches
// (and GRO) mix packets of several flows.
func TestManyFlows(t *testing.T) {
	a, b := pair(t)
	serveEcho(t, b, 7)
	payload := bigPayload[:len(bigPayload)/4]
	t.Run("group", func(t *testing.T) {
		for i := range 8 {
			dst := netip.AddrPortFrom([]netip.Addr{addrB4, addrB6}[i%2], 7)
			t.Run(fmt.Sprintf("flow%d", i), func(t *testing.T) {
				t.Parallel()
				echo(t, a, dst, payload)
			})
		}
	})
}

func TestUDPEcho(t *testing.T) {
	a, b := pair(t)
	pc, err := b.ListenUDP(53)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 2000)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
	for _, tt := range []struct {
		network string
		dst     netip.Addr
	}{{"udp", addrB4}, {"udp4", addrB4}, {"udp", addrB6}, {"udp6", addrB6}} {
		t.Run(tt.network+"/"+tt.dst.String(), func(t *testing.T) {
			c, err := a.DialContext(context.Background(), tt.network, netip.AddrPortFrom(tt.dst, 53))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			msg := []byte("hello over udp")
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 100)
			n, err := c.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf[:n], msg) {
				t.Fatalf("got %q, want %q", buf[:n], msg)
			}
		})
	}
}

// TestDialClosedPortFailsFast: a dial to a closed port fails with the
// peer's refusal (a RST), not by waiting out the dial's context: the
// error, not the clock, tells the two apart.
func TestDialClosedPortFailsFast(t *testing.T) {
	a, _ := pair(t)
	for _, dst := range []netip.Addr{addrB4, addrB6} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		c, err := a.DialContext(ctx, "tcp", netip.AddrPortFrom(dst, 9))
		cancel()
		if err == nil {
			c.Close()
			t.Fatalf("dial %s: connected to a closed port", dst)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dial %s: %v, want ECONNREFUSED", dst, err)
		}
	}
}

func TestDialErrors(t *testing.T) {
	s := newStack(t, addrA4)
	tests := []struct {
		network string
		addr    netip.AddrPort
	}{
		{"ip", netip.AddrPortFrom(addrB4, 1)},
		{"tcp", netip.AddrPort{}},
		{"tcp", netip.AddrPortFrom(addrB4, 0)},
		{"tcp6", netip.AddrPortFrom(addrB4, 80)},
		{"udp4", netip.AddrPortFrom(addrB6, 80)},
	}
	for _, tt := range tests {
		if c, err := s.DialContext(context.Background(), tt.network, tt.addr); err == nil {
			c.Close()
			t.Errorf("dial %s %s succeeded", tt.network, tt.addr)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.DialContext(ctx, "tcp", netip.AddrPortFrom(addrB4, 80)); !errors.Is(err, context.Canceled) {
		t.Errorf("dial with cancelled context: %v", err)
	}
}

func TestDialTimesOutWithContext(t *testing.T) {
	s := newStack(t, addrA4) // nothing reads its packets: SYNs go nowhere
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := s.DialContext(ctx, "tcp", netip.AddrPortFrom(addrB4, 80))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want deadline exceeded", err)
	}
}

func TestCloseEndsEverything(t *testing.T) {
	a, b := pair(t)
	ln, err := b.ListenTCP(80)
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	c, err := a.DialContext(context.Background(), "tcp", netip.AddrPortFrom(addrB4, 80))
	if err != nil {
		t.Fatal(err)
	}
	sc := <-accepted
	readErr := make(chan error, 1)
	go func() {
		_, err := sc.Read(make([]byte, 1))
		readErr <- err
	}()
	b.Close()
	if err := <-readErr; err == nil {
		t.Error("read on a conn of a closed stack succeeded")
	}
	if _, err := ln.Accept(); err == nil {
		t.Error("accept on a closed stack succeeded")
	}
	if _, err := b.ListenTCP(81); !errors.Is(err, net.ErrClosed) {
		t.Errorf("listen after close: %v", err)
	}
	if _, err := b.Read(make([][]byte, 1), make([]int, 1), 0); !errors.Is(err, os.ErrClosed) {
		t.Errorf("read after close: %v", err)
	}
	if _, ok := <-b.Events(); ok {
		// EventUp is still buffered; the channel must then be closed.
		if _, ok := <-b.Events(); ok {
			t.Error("events channel not closed")
		}
	}
	c.Close()
	sc.Close()
	ln.Close()
	if err := b.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}

func TestPing(t *testing.T) {
	a, _ := pair(t)
	for _, dst := range []netip.Addr{addrB4, addrB6} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		rtt, err := a.Ping(ctx, dst)
		cancel()
		if err != nil {
			t.Fatalf("ping %s: %v", dst, err)
		}
		if rtt <= 0 {
			t.Errorf("ping %s: rtt %v", dst, rtt)
		}
	}
	s := newStack(t, addrA4) // no peer: no reply
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Ping(ctx, addrB4); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ping without peer: %v", err)
	}
}
