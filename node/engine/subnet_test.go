package engine

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/wire"
)

// TestPlanSubnetRoutes: a TUN-mode node routes each assigned subnet into
// its device with its mesh address of that family as the source, and
// skips (with the reason) exit routes, mesh overlaps, routes covering an
// address that must not enter the tunnel, and families it has no address
// in.
func TestPlanSubnetRoutes(t *testing.T) {
	pfx, addr := netip.MustParsePrefix, netip.MustParseAddr
	self := []netip.Prefix{pfx("100.64.0.7/32"), pfx("fd7a:115c:a1e0::7/128")}
	k := key.NewNode().Public()
	avoid := []keepOut{
		{addr("192.168.1.20"), "this host's address"},
		{addr("203.0.113.10"), "the coordinator"},
		{addr("198.51.100.1"), "a relay"},
	}
	tests := []struct {
		name    string
		routes  []string
		self    []netip.Prefix
		install string // dst>src, comma-separated
		skipped string // prefixes, comma-separated
	}{
		{"none", nil, self, "", ""},
		{"both families", []string{"10.20.0.0/24", "fd00:20::/64"}, self, "10.20.0.0/24>100.64.0.7,fd00:20::/64>fd7a:115c:a1e0::7", ""},
		{"exit routes never", []string{"0.0.0.0/0", "::/0", "10.20.0.0/24"}, self, "10.20.0.0/24>100.64.0.7", ""},
		{"the host's own LAN", []string{"192.168.1.0/24", "10.20.0.0/24"}, self, "10.20.0.0/24>100.64.0.7", "192.168.1.0/24"},
		{"the coordinator", []string{"203.0.113.0/24"}, self, "", "203.0.113.0/24"},
		{"a relay", []string{"198.51.0.0/16"}, self, "", "198.51.0.0/16"},
		{"the mesh range", []string{"100.64.0.0/12", "fd7a:115c:a1e0:1::/64"}, self, "", "100.64.0.0/12,fd7a:115c:a1e0:1::/64"},
		{"no IPv6 address", []string{"fd00:20::/64"}, self[:1], "", "fd00:20::/64"},
		{"host route next to the LAN", []string{"192.168.1.21/32"}, self, "192.168.1.21/32>100.64.0.7", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := map[netip.Prefix]key.NodePublic{}
			for _, r := range tt.routes {
				a[pfx(r)] = k
			}
			install, skipped := planSubnetRoutes(a, tt.self, avoid)
			var got, gotSkipped []string
			for _, r := range install {
				got = append(got, fmt.Sprintf("%s>%s", r.dst, r.src))
			}
			for _, s := range skipped {
				gotSkipped = append(gotSkipped, s.dst.String())
				if s.reason == "" {
					t.Errorf("skipped %s with no reason", s.dst)
				}
			}
			if g := strings.Join(got, ","); g != tt.install {
				t.Errorf("installed %q, want %q", g, tt.install)
			}
			if g := strings.Join(gotSkipped, ","); g != tt.skipped {
				t.Errorf("skipped %q (%v), want %q", g, skipped, tt.skipped)
			}
		})
	}
	// The reason names what the route would have swallowed.
	_, skipped := planSubnetRoutes(map[netip.Prefix]key.NodePublic{pfx("203.0.113.0/24"): k}, self, avoid)
	if len(skipped) != 1 || !strings.Contains(skipped[0].reason, "203.0.113.10 (the coordinator)") {
		t.Errorf("skipped %v", skipped)
	}
}

// TestDropLoopingEndpoints: endpoints inside an installed subnet route
// (which would send WireGuard's UDP into its own tunnel) are dropped from
// what path selection sees; the caller's slice is untouched.
func TestDropLoopingEndpoints(t *testing.T) {
	ap := netip.MustParseAddrPort
	peers := []wire.Node{
		{ID: 1, Endpoints: []netip.AddrPort{ap("10.77.1.2:41641"), ap("10.20.0.1:41641"), ap("[fd00:20::1]:41641")}},
		{ID: 2, Endpoints: []netip.AddrPort{ap("192.0.2.1:41641")}},
	}
	orig := slices.Clone(peers[0].Endpoints)
	installed := []tunRoute{{dst: netip.MustParsePrefix("10.20.0.0/24")}, {dst: netip.MustParsePrefix("fd00:20::/64")}}
	got := dropLoopingEndpoints(peers, installed)
	if !slices.Equal(got[0].Endpoints, []netip.AddrPort{ap("10.77.1.2:41641")}) || !slices.Equal(got[1].Endpoints, peers[1].Endpoints) {
		t.Errorf("endpoints %v, %v", got[0].Endpoints, got[1].Endpoints)
	}
	if !slices.Equal(peers[0].Endpoints, orig) {
		t.Errorf("the caller's peers changed: %v", peers[0].Endpoints)
	}
	if got := dropLoopingEndpoints(peers, nil); &got[0] != &peers[0] {
		t.Error("no routes: want the same slice back")
	}
}

func TestDiffRoutes(t *testing.T) {
	r := func(s string) tunRoute {
		return tunRoute{dst: netip.MustParsePrefix(s), src: netip.MustParseAddr("100.64.0.7")}
	}
	add, del := diffRoutes([]tunRoute{r("10.1.0.0/16"), r("10.2.0.0/16")}, []tunRoute{r("10.2.0.0/16"), r("10.3.0.0/16")})
	if !slices.Equal(add, []tunRoute{r("10.3.0.0/16")}) || !slices.Equal(del, []tunRoute{r("10.1.0.0/16")}) {
		t.Errorf("add %v, del %v", add, del)
	}
}

// TestDERPAddrs: relays named by IP (URL or STUN) are kept out of subnet
// routes; names are not resolved.
func TestDERPAddrs(t *testing.T) {
	m := &wire.DERPMap{Regions: []wire.DERPRegion{
		{ID: 1, URL: "https://198.51.100.1:8443/derp", STUN: []string{"198.51.100.2:3478", "[2001:db8::2]:3478", "203.0.113.9"}},
		{ID: 2, URL: "https://relay.example.com/derp", STUN: []string{"stun.example.com:3478"}},
	}}
	var got []string
	for _, a := range derpAddrs(m) {
		got = append(got, a.String())
	}
	if g := strings.Join(got, ","); g != "198.51.100.1,198.51.100.2,2001:db8::2,203.0.113.9" {
		t.Errorf("derpAddrs = %s", g)
	}
	if derpAddrs(nil) != nil {
		t.Error("nil map")
	}
}
