package testmesh

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/tstest/streambench"
	"github.com/warrenmesh/warren/node/controlclient"
	"github.com/warrenmesh/warren/node/proxy"
)

// BenchmarkDeltaPropagation measures, end to end over real websockets and
// Noise channels on loopback, how long one node's endpoint change takes to
// reach the netmaps of all other connected nodes.
func BenchmarkDeltaPropagation(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			m := New(b, Options{})
			u := m.User("ann@example.com")
			k := m.AuthKey(registry.AuthKeyRequest{UserID: u.ID, Reusable: true})
			nodes := make([]*Node, n)
			for i := range nodes {
				nodes[i] = m.AddNode(fmt.Sprintf("n%d", i), NodeOptions{AuthKey: k})
			}
			for _, node := range nodes {
				if err := node.WaitFor(wait, func(nm *controlclient.Netmap) bool { return len(nm.Peers) == n-1 }); err != nil {
					b.Fatal(err)
				}
			}
			mover, watchers := nodes[0], nodes[1:]
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ep := netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), uint16(1000+i%60000))
				mover.Client.SetEndpoints([]netip.AddrPort{ep}, 1)
				for _, w := range watchers {
					err := w.WaitFor(wait, func(nm *controlclient.Netmap) bool {
						p, ok := nm.PeerByName("n0")
						return ok && len(p.Endpoints) == 1 && p.Endpoints[0] == ep
					})
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkTunnelThroughput measures TCP throughput from one node's
// userspace stack to another's through real WireGuard over loopback UDP,
// beside plain loopback TCP in the same run (the ratio is what matters on
// a shared machine).
func BenchmarkTunnelThroughput(b *testing.B) {
	run := func(b *testing.B, dial func() (net.Conn, error), ln net.Listener) {
		streambench.Run(b, ln, dial)
	}
	b.Run("loopback-tcp", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		run(b, func() (net.Conn, error) { return net.Dial("tcp", ln.Addr().String()) }, ln)
	})
	b.Run("warren-userspace", func(b *testing.B) {
		src, ln, target := tunnelPair(b, false)
		run(b, func() (net.Conn, error) {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			return src.Engine().DialContext(ctx, "tcp", target)
		}, ln)
	})
	// The userspace mode as apps use it: through the node's SOCKS5 proxy
	// on loopback, which dials through the engine.
	// The same through the embedded relay (DERP over websocket), as
	// between peers that cannot reach each other directly.
	b.Run("warren-relayed", func(b *testing.B) {
		src, ln, target := tunnelPair(b, true)
		run(b, func() (net.Conn, error) {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			return src.Engine().DialContext(ctx, "tcp", target)
		}, ln)
	})
	b.Run("warren-socks5", func(b *testing.B) {
		src, ln, target := tunnelPair(b, false)
		srv, err := proxy.New(proxy.Config{
			Dial: src.Engine().DialContext,
			Resolve: func(ctx context.Context, host string) (netip.Addr, error) {
				return netip.Addr{}, fmt.Errorf("%q: %w", host, proxy.ErrUnknownHost)
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		pln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(pln) }()
		defer func() {
			srv.Close()
			if err := <-served; err != nil {
				b.Error(err)
			}
		}()
		run(b, func() (net.Conn, error) { return socks5Connect(pln.Addr().String(), target) }, ln)
	})
}

// tunnelPair starts a mesh of two data-plane nodes and returns the source
// node, a listener on port 9000 of the destination node's userspace stack
// and that listener's mesh address. The nodes use the direct path (which
// the function waits for) or, with relayOnly, the embedded relay.
func tunnelPair(b *testing.B, relayOnly bool) (*Node, net.Listener, netip.AddrPort) {
	b.Helper()
	m := New(b, Options{})
	u := m.User("ann@example.com")
	k := m.AuthKey(registry.AuthKeyRequest{UserID: u.ID, Reusable: true})
	src := m.AddNode("src", NodeOptions{AuthKey: k, DataPlane: true, RelayOnly: relayOnly})
	dst := m.AddNode("dst", NodeOptions{AuthKey: k, DataPlane: true, RelayOnly: relayOnly})
	for _, n := range []*Node{src, dst} {
		if err := n.WaitFor(wait, func(nm *controlclient.Netmap) bool {
			return len(nm.Peers) == 1 && len(nm.Peers[0].Endpoints) > 0 && nm.Peers[0].HomeRelay != 0 && n.Engine() != nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	ln, err := dst.Engine().ListenTCP(9000)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	target := netip.AddrPortFrom(dst.Netmap().Self.Addresses[0].Addr(), 9000)
	// One connection proves the path (and, when direct, upgrades it).
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := src.Engine().DialContext(ctx, "tcp", target)
	if err != nil {
		b.Fatal(err)
	}
	c.Close()
	if a, err := ln.Accept(); err == nil {
		a.Close()
	}
	want := "direct "
	if relayOnly {
		want = "relay "
	}
	for _, n := range []*Node{src, dst} {
		poll.Until(b, wait, n.Name+": path "+want+"…", func() error {
			if p := n.Engine().Path(n.Netmap().Peers[0].NodeKey); !strings.HasPrefix(p, want) {
				return fmt.Errorf("path %q", p)
			}
			return nil
		})
	}
	return src, ln, target
}

// socks5Connect opens a connection to target through the SOCKS5 proxy at
// proxyAddr (no authentication, CONNECT to an IP address).
func socks5Connect(proxyAddr string, target netip.AddrPort) (net.Conn, error) {
	c, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (net.Conn, error) {
		c.Close()
		return nil, fmt.Errorf("socks5 connect %s via %s: %w", target, proxyAddr, err)
	}
	ip := target.Addr().Unmap()
	req := []byte{5, 1, 0, 5, 1, 0, 1} // greeting (no auth), then CONNECT to IPv4
	if ip.Is6() {
		req[6] = 4
	}
	req = append(append(req, ip.AsSlice()...), byte(target.Port()>>8), byte(target.Port()))
	if _, err := c.Write(req); err != nil {
		return fail(err)
	}
	// Method choice (2 bytes), then the reply head: version, code,
	// reserved, address type; then the bound address and port.
	head := make([]byte, 6)
	if _, err := io.ReadFull(c, head); err != nil {
		return fail(err)
	}
	if head[1] != 0 || head[3] != 0 {
		return fail(fmt.Errorf("method %#x, reply %#x", head[1], head[3]))
	}
	bound := map[byte]int{1: 4, 4: 16}[head[5]]
	if bound == 0 {
		return fail(fmt.Errorf("reply address type %#x", head[5]))
	}
	if _, err := io.ReadFull(c, make([]byte, bound+2)); err != nil {
		return fail(err)
	}
	return c, nil
}
