package policy

import (
	"net/netip"
	"testing"
)

// TestStarSourcesExcludeReserved checks starSources address by address at
// every boundary: all of 100.64.0.0/10 and fd7a:115c:a1e0::/48 but
// 100.115.92.0/23, nothing outside.
func TestStarSourcesExcludeReserved(t *testing.T) {
	in := func(a netip.Addr) bool {
		for _, p := range starSources {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	reserved := netip.MustParsePrefix("100.115.92.0/23")
	mesh := netip.MustParsePrefix("100.64.0.0/10")
	// Every /24 of the /10, and the addresses around each prefix edge.
	for a := netip.MustParseAddr("100.63.255.0"); a.Less(netip.MustParseAddr("100.128.1.0")); {
		for _, x := range []netip.Addr{a, a.Next(), a.Prev()} {
			want := mesh.Contains(x) && !reserved.Contains(x)
			if in(x) != want {
				t.Fatalf("%v: in starSources %v, want %v", x, in(x), want)
			}
		}
		b := a.As4()
		b[2]++
		if b[2] == 0 {
			b[1]++
		}
		a = netip.AddrFrom4(b)
	}
	for _, x := range []string{"fd7a:115c:a1e0::1", "fd7a:115c:a1e0:ffff:ffff:ffff:ffff:ffff"} {
		if !in(netip.MustParseAddr(x)) {
			t.Fatalf("%s not in starSources", x)
		}
	}
	if in(netip.MustParseAddr("fd7a:115c:a1e1::1")) || in(netip.MustParseAddr("10.0.0.1")) {
		t.Fatal("starSources reaches outside the mesh")
	}
}
