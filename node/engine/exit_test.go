package engine

import (
	"net/netip"
	"testing"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/routes"
	"github.com/warrenmesh/warren/internal/wire"
)

// TestAssignExitNode: the chosen exit node gets 0.0.0.0/0 and ::/0 in
// its allowed IPs, subnet routes of other peers stay more specific, and
// a choice that is no (approved) exit node assigns nothing.
func TestAssignExitNode(t *testing.T) {
	pfx := netip.MustParsePrefix
	exit := wire.Node{ID: 7, NodeKey: key.NewNode().Public(), Online: true, Addresses: []netip.Prefix{pfx("100.64.0.7/32")},
		Routes: []netip.Prefix{routes.ExitV4, routes.ExitV6}}
	router := wire.Node{ID: 3, NodeKey: key.NewNode().Public(), Online: true, Addresses: []netip.Prefix{pfx("100.64.0.3/32")},
		Routes: []netip.Prefix{pfx("10.20.0.0/24")}}
	half := wire.Node{ID: 9, NodeKey: key.NewNode().Public(), Online: true, Routes: []netip.Prefix{routes.ExitV4}}
	peers := []wire.Node{exit, router, half}
	tests := []struct {
		name   string
		exit   key.NodePublic
		lookup map[string]key.NodePublic // address -> carrying peer (zero: none)
		exitIP string                    // the exit node's allowed IPs
	}{
		{"none", key.NodePublic{}, map[string]key.NodePublic{"8.8.8.8": {}, "10.20.0.5": router.NodeKey}, "100.64.0.7/32"},
		{"exit", exit.NodeKey, map[string]key.NodePublic{"8.8.8.8": exit.NodeKey, "2001:db8::1": exit.NodeKey, "10.20.0.5": router.NodeKey}, "0.0.0.0/0,100.64.0.7/32,::/0"},
		{"not an exit node", router.NodeKey, map[string]key.NodePublic{"8.8.8.8": {}}, "100.64.0.7/32"},
		{"only half an exit node", half.NodeKey, map[string]key.NodePublic{"8.8.8.8": {}}, "100.64.0.7/32"},
		{"unknown", key.NewNode().Public(), map[string]key.NodePublic{"8.8.8.8": {}}, "100.64.0.7/32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := Assign(peers, tt.exit)
			for addr, want := range tt.lookup {
				k, ok := RouteFor(a, netip.MustParseAddr(addr))
				if ok != !want.IsZero() || k != want {
					t.Errorf("RouteFor(%s) = %v, %v; want %v", addr, k, ok, want)
				}
			}
			if got := routes.Format(allowedIPs(exit, a)); got != tt.exitIP {
				t.Errorf("exit node's allowed IPs %s, want %s", got, tt.exitIP)
			}
			if got := routes.Format(allowedIPs(router, a)); got != "10.20.0.0/24,100.64.0.3/32" {
				t.Errorf("router's allowed IPs %s", got)
			}
		})
	}
}
