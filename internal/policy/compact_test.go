package policy

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/internal/wire"
)

func TestCompactPrefixes(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"100.64.0.1/32", "100.64.0.1/32"},
		{"100.64.0.1/32 100.64.0.2/32", "100.64.0.1/32 100.64.0.2/32"},
		{"100.64.0.2/32 100.64.0.3/32", "100.64.0.2/31"},
		{"100.64.0.1/32 100.64.0.2/32 100.64.0.3/32 100.64.0.4/32", "100.64.0.1/32 100.64.0.2/31 100.64.0.4/32"},
		{"10.0.0.0/8 10.1.0.0/16 10.1.2.3/32", "10.0.0.0/8"},
		{"10.0.0.0/9 10.128.0.0/9", "10.0.0.0/8"},
		{"0.0.0.0/0 ::/0 1.2.3.4/32", "0.0.0.0/0 ::/0"},
		{"255.255.255.255/32 255.255.255.254/32", "255.255.255.254/31"},
		{"fd7a:115c:a1e0::6440:1/128 100.64.0.1/32 fd7a:115c:a1e0::6440:0/128", "100.64.0.1/32 fd7a:115c:a1e0::6440:0/127"},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"},
		{"0:0:0:1::/64 0:0:0:1:8000::/65", "0:0:0:1::/64"},
		{"0:0:0:0:ffff:ffff:ffff:ffff/128 0:0:0:1::/128", "0:0:0:0:ffff:ffff:ffff:ffff/128 0:0:0:1::/128"},
		{"0:0:0:0:8000::/65 0:0:0:1::/64", "0:0:0:0:8000::/65 0:0:0:1::/64"},
		{"0:0:0:0:8000::/65 0:0:0:0::/65", "::/64"},
	} {
		got := CompactPrefixes(parsePrefixes(t, tc.in))
		if want := parsePrefixes(t, tc.want); !slices.Equal(got, want) {
			t.Errorf("CompactPrefixes(%s) = %v, want %v", tc.in, got, want)
		}
	}
}

// TestCompactPrefixesMesh: a dense mesh of 10,000 nodes (both families)
// compacts to a few dozen prefixes.
func TestCompactPrefixesMesh(t *testing.T) {
	var ps []netip.Prefix
	for i := 1; i <= 10000; i++ {
		v4 := netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)})
		b := netip.MustParseAddr("fd7a:115c:a1e0::").As16()
		copy(b[12:], v4.AsSlice())
		ps = append(ps, netip.PrefixFrom(v4, 32), netip.PrefixFrom(netip.AddrFrom16(b), 128))
	}
	ps = dedupPrefixes(ps)
	got := CompactPrefixes(ps)
	if len(got) > 40 {
		t.Errorf("10,000 dense nodes compact to %d prefixes, want at most 40", len(got))
	}
	if !wire.SortedPrefixes(got) {
		t.Errorf("not sorted: %v", got)
	}
	for _, p := range ps {
		if !coveredBy(got, p.Addr()) {
			t.Fatalf("%v lost", p)
		}
	}
}

func parsePrefixes(t *testing.T, s string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, f := range strings.Fields(s) {
		out = append(out, netip.MustParsePrefix(f))
	}
	return out
}

func coveredBy(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// FuzzCompactPrefixes checks CompactPrefixes against the plain meaning of
// a prefix list: the result is strictly sorted, no two of its prefixes
// overlap or could merge into one, and every address at the edges of an
// input or output prefix (and next to them) is covered by the result
// exactly when it is covered by the input.
func FuzzCompactPrefixes(f *testing.F) {
	f.Add([]byte{100, 64, 0, 2, 32, 100, 64, 0, 3, 32})
	f.Add([]byte{10, 0, 0, 0, 9, 10, 128, 0, 0, 9, 10, 1, 2, 3, 32})
	f.Add([]byte{255, 255, 255, 254, 31, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var in []netip.Prefix
		for len(b) >= 5 {
			// Five bytes make an IPv4 prefix; a length byte above 32 makes
			// an IPv6 one from the same four bytes at its top and bottom.
			a4 := netip.AddrFrom4([4]byte(b[:4]))
			bitsN := int(b[4])
			if bitsN <= 32 {
				in = append(in, netip.PrefixFrom(a4, bitsN))
			} else {
				var a16 [16]byte
				copy(a16[:4], b[:4])
				copy(a16[12:], b[:4])
				in = append(in, netip.PrefixFrom(netip.AddrFrom16(a16), (bitsN-33)%129))
			}
			b = b[5:]
		}
		orig := slices.Clone(in)
		got := CompactPrefixes(in)
		if !slices.Equal(in, orig) {
			t.Fatal("input modified")
		}
		if !wire.SortedPrefixes(got) {
			t.Fatalf("not sorted: %v", got)
		}
		for i, p := range got {
			if p != p.Masked() {
				t.Fatalf("%v not masked", p)
			}
			if i > 0 {
				q := got[i-1]
				if q.Overlaps(p) {
					t.Fatalf("%v overlaps %v", q, p)
				}
				if q.Bits() == p.Bits() && q.Bits() > 0 {
					parent, _ := q.Addr().Prefix(q.Bits() - 1)
					if parent.Contains(p.Addr()) {
						t.Fatalf("%v and %v should merge", q, p)
					}
				}
			}
		}
		var probes []netip.Addr
		for _, p := range append(slices.Clone(orig), got...) {
			s := spanOf(p)
			for _, u := range []u128{s.first, s.last} {
				probes = append(probes, u.addr(s.bitLen))
				if v, of := u.add(u128{lo: 1}); !of && (s.bitLen == 128 || v.lo>>32 == 0) {
					probes = append(probes, v.addr(s.bitLen))
				}
				if u != (u128{}) {
					probes = append(probes, u.sub(u128{lo: 1}).addr(s.bitLen))
				}
			}
		}
		for _, a := range probes {
			if coveredBy(orig, a) != coveredBy(got, a) {
				t.Fatalf("%v: in input %v, in result %v (%v -> %v)", a, coveredBy(orig, a), coveredBy(got, a), orig, got)
			}
		}
	})
}

// TestPatched checks the merge of a source patch into a built list, and
// that a patch that does not fit the list is refused (the graph then
// rebuilds the list from scratch).
func TestPatched(t *testing.T) {
	p := func(s string) netip.Prefix { return netip.MustParsePrefix(s) }
	for _, tc := range []struct {
		built string
		patch srcPatch
		want  string
		ok    bool
	}{
		{"", srcPatch{p("100.64.0.1/32"): true}, "100.64.0.1/32", true},
		{"100.64.0.1/32 100.64.0.3/32", srcPatch{p("100.64.0.2/32"): true, p("fd7a::1/128"): true}, "100.64.0.1/32 100.64.0.2/32 100.64.0.3/32 fd7a::1/128", true},
		{"100.64.0.1/32 100.64.0.3/32", srcPatch{p("100.64.0.3/32"): false, p("100.64.0.0/32"): true}, "100.64.0.0/32 100.64.0.1/32", true},
		{"100.64.0.1/32", srcPatch{p("100.64.0.1/32"): true}, "", false},  // adds what it has
		{"100.64.0.1/32", srcPatch{p("100.64.0.0/32"): false}, "", false}, // removes what it lacks
		{"100.64.0.1/32", srcPatch{p("100.64.0.2/32"): false}, "", false}, // removes what it lacks, past the end
		{"", srcPatch{p("100.64.0.2/32"): false}, "", false},
	} {
		built := parsePrefixes(t, tc.built)
		orig := slices.Clone(built)
		got, ok := patched(built, tc.patch)
		if ok != tc.ok || (ok && !slices.Equal(got, parsePrefixes(t, tc.want))) {
			t.Errorf("patched(%s, %v) = %v, %v; want %s, %v", tc.built, tc.patch, got, ok, tc.want, tc.ok)
		}
		if !slices.Equal(built, orig) {
			t.Errorf("patched modified its input")
		}
	}
}
