package engine

import (
	"net/netip"
	"testing"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/routes"
	"github.com/warrenmesh/warren/internal/wire"
)

// TestSubnetRoutes: each prefix goes to one peer (online first, then the
// lowest ID); exit routes go to nobody; a peer's allowed IPs are its
// addresses and the routes it was given; the longest prefix wins.
func TestSubnetRoutes(t *testing.T) {
	pfx := netip.MustParsePrefix
	r1 := wire.Node{ID: 5, NodeKey: key.NewNode().Public(), Online: true, Addresses: []netip.Prefix{pfx("100.64.0.5/32")},
		Routes: []netip.Prefix{pfx("10.20.0.0/24"), pfx("10.30.0.0/16"), routes.ExitV4, routes.ExitV6}}
	r2 := wire.Node{ID: 3, NodeKey: key.NewNode().Public(), Online: true, Addresses: []netip.Prefix{pfx("100.64.0.3/32")},
		Routes: []netip.Prefix{pfx("10.20.0.0/24"), pfx("10.30.5.0/24")}}
	off := wire.Node{ID: 1, NodeKey: key.NewNode().Public(), Online: false, Routes: []netip.Prefix{pfx("10.30.0.0/16")}}
	a := SubnetRoutes([]wire.Node{r1, r2, off})
	if len(a) != 3 || a[pfx("10.20.0.0/24")] != r2.NodeKey || a[pfx("10.30.0.0/16")] != r1.NodeKey || a[pfx("10.30.5.0/24")] != r2.NodeKey {
		t.Fatalf("assignment %v", a)
	}
	for addr, want := range map[string]key.NodePublic{"10.30.5.9": r2.NodeKey, "10.30.6.9": r1.NodeKey, "10.20.0.1": r2.NodeKey} {
		if k, ok := RouteFor(a, netip.MustParseAddr(addr)); !ok || k != want {
			t.Errorf("RouteFor(%s) = %v, %v", addr, k, ok)
		}
	}
	if _, ok := RouteFor(a, netip.MustParseAddr("8.8.8.8")); ok {
		t.Error("an internet address has a router without an exit node chosen")
	}
	if got := routes.Format(allowedIPs(r1, a)); got != "10.30.0.0/16,100.64.0.5/32" {
		t.Errorf("r1's allowed IPs %s", got)
	}
	if got := routes.Format(allowedIPs(r2, a)); got != "10.20.0.0/24,10.30.5.0/24,100.64.0.3/32" {
		t.Errorf("r2's allowed IPs %s", got)
	}
	// The online router's going offline moves its prefix to the other.
	r2.Online = false
	if a := SubnetRoutes([]wire.Node{r1, r2, off}); a[pfx("10.20.0.0/24")] != r1.NodeKey {
		t.Errorf("failover: 10.20.0.0/24 to %v", a[pfx("10.20.0.0/24")])
	}
}
