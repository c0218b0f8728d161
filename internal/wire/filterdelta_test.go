package wire

import (
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"testing"
)

func pfx(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestApplyFilterDelta(t *testing.T) {
	base := []FilterRule{
		{SrcPrefixes: pfx("100.64.0.1/32", "100.64.0.3/32"), DstPorts: []PortRange{{Prefix: netip.MustParsePrefix("100.64.0.9/32"), Last: 65535}}, Rule: "acls[0]"},
		{SrcPrefixes: pfx("100.64.0.2/32", "fd7a::2/128"), Rule: "acls[1]"},
	}
	for _, tc := range []struct {
		name string
		ds   []FilterRuleDelta
		want [][]netip.Prefix // each rule's sources after; nil: ErrBadFilterDelta
	}{
		{"add in the middle", []FilterRuleDelta{{Index: 0, Rule: "acls[0]", Add: pfx("100.64.0.2/32")}},
			[][]netip.Prefix{pfx("100.64.0.1/32", "100.64.0.2/32", "100.64.0.3/32"), base[1].SrcPrefixes}},
		{"add and remove", []FilterRuleDelta{{Index: 1, Rule: "acls[1]", Add: pfx("100.64.0.1/32", "fd7a::1/128"), Remove: pfx("fd7a::2/128")}},
			[][]netip.Prefix{base[0].SrcPrefixes, pfx("100.64.0.1/32", "100.64.0.2/32", "fd7a::1/128")}},
		{"in order on one rule", []FilterRuleDelta{
			{Index: 0, Rule: "acls[0]", Add: pfx("100.64.0.4/32")},
			{Index: 0, Rule: "acls[0]", Remove: pfx("100.64.0.1/32", "100.64.0.4/32")}},
			[][]netip.Prefix{pfx("100.64.0.3/32"), base[1].SrcPrefixes}},
		{"index out of range", []FilterRuleDelta{{Index: 2, Add: pfx("100.64.0.2/32")}}, nil},
		{"negative index", []FilterRuleDelta{{Index: -1}}, nil},
		{"wrong rule", []FilterRuleDelta{{Index: 0, Rule: "acls[1]", Add: pfx("100.64.0.2/32")}}, nil},
		{"adds what it has", []FilterRuleDelta{{Index: 0, Rule: "acls[0]", Add: pfx("100.64.0.3/32")}}, nil},
		{"removes what it lacks", []FilterRuleDelta{{Index: 0, Rule: "acls[0]", Remove: pfx("100.64.0.2/32")}}, nil},
		{"removes past the end", []FilterRuleDelta{{Index: 0, Rule: "acls[0]", Remove: pfx("100.64.0.9/32")}}, nil},
		{"adds and removes one", []FilterRuleDelta{{Index: 0, Rule: "acls[0]", Add: pfx("100.64.0.3/32"), Remove: pfx("100.64.0.3/32")}}, nil},
		{"out of order", []FilterRuleDelta{{Index: 0, Rule: "acls[0]", Add: pfx("100.64.0.5/32", "100.64.0.4/32")}}, nil},
		{"repeats", []FilterRuleDelta{{Index: 0, Rule: "acls[0]", Add: pfx("100.64.0.5/32", "100.64.0.5/32")}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := slices.Clone(base[0].SrcPrefixes)
			got, err := ApplyFilterDelta(base, tc.ds)
			if !slices.Equal(base[0].SrcPrefixes, before) {
				t.Fatal("ApplyFilterDelta modified its input")
			}
			if tc.want == nil {
				if !errors.Is(err, ErrBadFilterDelta) {
					t.Fatalf("got %v, %v; want ErrBadFilterDelta", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				if !slices.Equal(got[i].SrcPrefixes, tc.want[i]) {
					t.Errorf("rule %d sources %v, want %v", i, got[i].SrcPrefixes, tc.want[i])
				}
				if got[i].Rule != base[i].Rule || !reflect.DeepEqual(got[i].DstPorts, base[i].DstPorts) {
					t.Errorf("rule %d changed beyond its sources: %+v", i, got[i])
				}
			}
		})
	}
}

// prefixesFrom turns fuzz bytes into a prefix list (any order, repeats
// possible): two bytes per prefix, the second's low bit picking IPv6.
func prefixesFrom(b []byte) []netip.Prefix {
	var out []netip.Prefix
	for i := 0; i+1 < len(b); i += 2 {
		if b[i+1]&1 == 0 {
			out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, b[i+1] >> 4, b[i]}), 32))
		} else {
			out = append(out, netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 0x7a, 14: b[i+1], 15: b[i]}), 128))
		}
	}
	return out
}

func sortedSet(ps []netip.Prefix) []netip.Prefix {
	ps = slices.Clone(ps)
	slices.SortFunc(ps, ComparePrefix)
	return slices.Compact(ps)
}

// FuzzFilterDelta checks that the difference of two source lists applied
// to the first gives exactly the second, and that a rule delta decoded
// from arbitrary JSON either applies, leaving its input untouched and its
// sources in order, or fails with ErrBadFilterDelta.
func FuzzFilterDelta(f *testing.F) {
	f.Add([]byte{1, 0, 2, 0, 3, 1}, []byte{2, 0, 4, 1}, []byte(`[{"index":0,"rule":"r","add":["100.64.0.9/32"],"remove":["100.64.0.1/32"]}]`))
	f.Add([]byte{}, []byte{7, 7}, []byte(`[{"index":1}]`))
	f.Add([]byte{9, 9, 9, 9}, []byte{}, []byte(`[{"index":0,"rule":"r","remove":["100.64.0.1/32","100.64.0.1/32"]}]`))
	f.Fuzz(func(t *testing.T, a, b, js []byte) {
		old, nw := sortedSet(prefixesFrom(a)), sortedSet(prefixesFrom(b))
		add, remove, ok := DiffPrefixes(old, nw)
		if !ok {
			t.Fatal("DiffPrefixes refused sorted lists")
		}
		f := []FilterRule{{SrcPrefixes: old, Rule: "r"}}
		got, err := ApplyFilterDelta(f, []FilterRuleDelta{{Index: 0, Rule: "r", Add: add, Remove: remove}})
		if err != nil {
			t.Fatalf("diff of %v and %v does not apply: %v", old, nw, err)
		}
		if !slices.Equal(got[0].SrcPrefixes, nw) {
			t.Fatalf("%v patched by +%v -%v is %v, want %v", old, add, remove, got[0].SrcPrefixes, nw)
		}
		if _, _, ok := DiffPrefixes(prefixesFrom(a), nw); ok != SortedPrefixes(prefixesFrom(a)) {
			t.Fatal("DiffPrefixes accepted a list out of order")
		}

		var ds []FilterRuleDelta
		if json.Unmarshal(js, &ds) != nil {
			return
		}
		before := slices.Clone(old)
		got, err = ApplyFilterDelta(f, ds)
		if !slices.Equal(f[0].SrcPrefixes, before) {
			t.Fatal("ApplyFilterDelta modified its input")
		}
		if err != nil {
			if !errors.Is(err, ErrBadFilterDelta) {
				t.Fatalf("error %v is not ErrBadFilterDelta", err)
			}
			return
		}
		if len(got) != len(f) || !SortedPrefixes(got[0].SrcPrefixes) {
			t.Fatalf("applied delta gave %v", got)
		}
	})
}
