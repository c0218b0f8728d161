package engine

import (
	"net/netip"
	"slices"
	"testing"
)

func TestPlanTUN(t *testing.T) {
	v4 := netip.MustParseAddr("100.64.7.1")
	v6 := netip.MustParseAddr("fd7a:115c:a1e0::7:1")
	route4 := tunRoute{dst: netip.MustParsePrefix("100.64.0.0/10"), src: v4}
	route6 := tunRoute{dst: netip.MustParsePrefix("fd7a:115c:a1e0::/48"), src: v6}
	tests := []struct {
		name     string
		prefixes []string
		want     tunPlan
	}{
		{"none", nil, tunPlan{}},
		{"both families", []string{"100.64.7.1/32", "fd7a:115c:a1e0::7:1/128"},
			tunPlan{addrs: []netip.Addr{v4, v6}, routes: []tunRoute{route4, route6}}},
		{"IPv4 only", []string{"100.64.7.1/32"},
			tunPlan{addrs: []netip.Addr{v4}, routes: []tunRoute{route4}}},
		{"IPv6 only", []string{"fd7a:115c:a1e0::7:1/128"},
			tunPlan{addrs: []netip.Addr{v6}, routes: []tunRoute{route6}}},
		// A prefix counts by its address only; a mapped address is IPv4.
		{"wide prefix, mapped address", []string{"::ffff:100.64.7.1/128", "fd7a:115c:a1e0::7:1/64"},
			tunPlan{addrs: []netip.Addr{v4, v6}, routes: []tunRoute{route4, route6}}},
		// The first address of a family is the routes' source.
		{"two of a family", []string{"100.64.7.2/32", "100.64.7.1/32"},
			tunPlan{addrs: []netip.Addr{netip.MustParseAddr("100.64.7.2"), v4},
				routes: []tunRoute{{dst: route4.dst, src: netip.MustParseAddr("100.64.7.2")}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var prefixes []netip.Prefix
			for _, s := range tt.prefixes {
				prefixes = append(prefixes, netip.MustParsePrefix(s))
			}
			got := planTUN(prefixes)
			if !slices.Equal(got.addrs, tt.want.addrs) || !slices.Equal(got.routes, tt.want.routes) {
				t.Errorf("planTUN(%v) = %+v, want %+v", tt.prefixes, got, tt.want)
			}
		})
	}
	// The zero prefix (no address) is skipped.
	if got := planTUN([]netip.Prefix{{}}); len(got.addrs) != 0 || len(got.routes) != 0 {
		t.Errorf("planTUN(zero prefix) = %+v, want empty", got)
	}
}

func TestTUNPlanFamily(t *testing.T) {
	plan := planTUN([]netip.Prefix{
		netip.MustParsePrefix("100.64.7.1/32"),
		netip.MustParsePrefix("fd7a:115c:a1e0::7:1/128"),
	})
	for _, v6 := range []bool{false, true} {
		f := plan.family(v6)
		if len(f.addrs) != 1 || len(f.routes) != 1 {
			t.Fatalf("family(v6=%t) = %+v, want one address and one route", v6, f)
		}
		if f.addrs[0].Is6() != v6 || f.routes[0].dst.Addr().Is6() != v6 || f.routes[0].src != f.addrs[0] {
			t.Errorf("family(v6=%t) = %+v: wrong family or source", v6, f)
		}
	}
}

func TestHostPrefix(t *testing.T) {
	for _, tt := range []struct{ addr, want string }{
		{"100.64.7.1", "100.64.7.1/32"},
		{"fd7a:115c:a1e0::7:1", "fd7a:115c:a1e0::7:1/128"},
	} {
		if got := hostPrefix(netip.MustParseAddr(tt.addr)); got.String() != tt.want {
			t.Errorf("hostPrefix(%s) = %s, want %s", tt.addr, got, tt.want)
		}
	}
}
