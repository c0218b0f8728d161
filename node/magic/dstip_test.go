package magic

import (
	"net/netip"
	"testing"

	"golang.zx2c4.com/wireguard/ratelimiter"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/wire"
)

// TestDstIPPerPeer: every peer's endpoint reports its own stable address
// to WireGuard's handshake rate limiter (its first mesh address, or one
// derived from its node key), whether it is relayed or direct, so one
// relayed peer's handshake flood cannot use up another's bucket.
func TestDstIPPerPeer(t *testing.T) {
	t.Parallel()
	c := newBareConn(t, Config{})
	v4 := netip.MustParsePrefix("100.64.0.7/32")
	v6 := netip.MustParsePrefix("fd7a:115c:a1e0::7/128")
	tests := []struct {
		name  string
		addrs []netip.Prefix
		want  netip.Addr // zero: derived from the node key
	}{
		{"IPv4 first", []netip.Prefix{v4, v6}, v4.Addr()},
		{"IPv6 first", []netip.Prefix{v6, v4}, v6.Addr()},
		{"no addresses", nil, netip.Addr{}},
		{"only an invalid prefix", []netip.Prefix{{}}, netip.Addr{}},
	}
	var nodes []wire.Node
	for _, tt := range tests {
		nodes = append(nodes, wire.Node{NodeKey: key.NewNode().Public(), DiscoKey: key.NewDisco().Public(), Addresses: tt.addrs})
	}
	// A second peer without addresses: the derived addresses must differ.
	nodes = append(nodes, wire.Node{NodeKey: key.NewNode().Public(), DiscoKey: key.NewDisco().Public()})
	c.SetPeers(nodes)

	seen := map[netip.Addr]string{}
	for i, tt := range tests {
		ep, err := c.Bind().ParseEndpoint(nodes[i].NodeKey.String())
		if err != nil {
			t.Fatal(err)
		}
		got := ep.DstIP()
		if !got.IsValid() {
			t.Errorf("%s: relayed peer's DstIP is the zero address", tt.name)
		}
		if tt.want.IsValid() && got != tt.want {
			t.Errorf("%s: DstIP = %v, want %v", tt.name, got, tt.want)
		}
		// A proven direct path does not move it.
		p := c.peer(nodes[i].NodeKey)
		p.best.Store(&bestAddr{addr: netip.MustParseAddrPort("192.0.2.1:41641")})
		if again := ep.DstIP(); again != got {
			t.Errorf("%s: DstIP moved with the path: %v, then %v", tt.name, got, again)
		}
		p.best.Store(nil)
		if prev, dup := seen[got]; dup {
			t.Errorf("%s and %s share DstIP %v", prev, tt.name, got)
		}
		seen[got] = tt.name
	}
	last, err := c.Bind().ParseEndpoint(nodes[len(nodes)-1].NodeKey.String())
	if err != nil {
		t.Fatal(err)
	}
	if prev, dup := seen[last.DstIP()]; dup {
		t.Errorf("two peers without addresses share DstIP %v (%s)", last.DstIP(), prev)
	}
	// An endpoint parsed before the peer is known is just as stable.
	k := key.NewNode().Public()
	e1, _ := c.Bind().ParseEndpoint(k.String())
	e2, _ := c.Bind().ParseEndpoint(k.String())
	if !e1.DstIP().IsValid() || e1.DstIP() != e2.DstIP() {
		t.Errorf("unknown peer's DstIP = %v then %v, want one valid address", e1.DstIP(), e2.DstIP())
	}
}

// TestRateLimiterBucketsPerRelayedPeer runs wireguard-go's own handshake
// rate limiter over two relayed peers' endpoints: exhausting one peer's
// bucket leaves the other's untouched.
func TestRateLimiterBucketsPerRelayedPeer(t *testing.T) {
	t.Parallel()
	c := newBareConn(t, Config{})
	a := wire.Node{NodeKey: key.NewNode().Public(), DiscoKey: key.NewDisco().Public(),
		Addresses: []netip.Prefix{netip.MustParsePrefix("100.64.0.1/32")}}
	b := wire.Node{NodeKey: key.NewNode().Public(), DiscoKey: key.NewDisco().Public(),
		Addresses: []netip.Prefix{netip.MustParsePrefix("100.64.0.2/32")}}
	c.SetPeers([]wire.Node{a, b})
	epA, _ := c.Bind().ParseEndpoint(a.NodeKey.String())
	epB, _ := c.Bind().ParseEndpoint(b.NodeKey.String())

	var rl ratelimiter.Ratelimiter
	rl.Init()
	defer rl.Close()
	// The bucket holds a handful of handshakes; far more than that in a
	// burst (no time passes worth refilling more than a few) empties it.
	denied := false
	for range 1000 {
		if !rl.Allow(epA.DstIP()) {
			denied = true
			break
		}
	}
	if !denied {
		t.Fatal("a flood of 1000 handshakes from one peer was never limited")
	}
	if !rl.Allow(epB.DstIP()) {
		t.Error("another relayed peer's handshake was refused: the peers share a rate-limit bucket")
	}
}
