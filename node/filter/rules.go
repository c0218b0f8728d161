package filter

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/warrenmesh/warren/internal/wire"
)

// This file compiles wire.FilterRule lists into an immutable lookup structure
// and answers "does some rule accept (proto, src, dst, dport)?".
//
// Layout, per address family:
//
//  1. Destination: one hash table keyed by (masked destination prefix,
//     prefix length, protocol), plus the list of distinct destination prefix
//     lengths in use. A lookup masks the destination once per distinct length
//     and probes the table: O(L) probes, L <= 33 (IPv4) or 129 (IPv6) and in
//     practice 1 or 2 (a node's own /32 and /128, maybe a subnet route).
//     Every (rule, destination entry, protocol) is stored exactly once.
//  2. Port: inside a destination table, sources allowed on every port sit in
//     one set; the other port ranges are cut into P elementary segments (a
//     sorted []uint16 of segment starts) and stored in a segment tree, so a
//     rule's sources appear in O(log P) tree nodes, not once per segment. A
//     lookup binary-searches the segment (O(log P)) and walks leaf to root
//     (O(log P) nodes, most of them empty in practice).
//  3. Source: each set is a sorted list of disjoint address ranges (merged
//     prefixes), matched by binary search: O(log S).
//
// Per packet: O(L · log P · log S), which is O(log² n) in the number of rules
// n with L bounded by the address width; memory is O(E · log P) for E
// (source prefix, destination entry, protocol) triples. No allocation.

// defaultProtocols apply to a rule with no Protocols, per destination family.
var defaultProtocols = [2][]int{
	{protoTCP, protoUDP, protoICMP},   // IPv4
	{protoTCP, protoUDP, protoICMPv6}, // IPv6
}

// rng is an inclusive range of addresses.
type rng struct{ lo, hi u128 }

// srcSet is a sorted list of disjoint, non-adjacent address ranges.
type srcSet []rng

// contains reports whether a lies in one of the ranges. O(log n).
func (s srcSet) contains(a u128) bool {
	i, j := 0, len(s)
	for i < j {
		h := int(uint(i+j) >> 1)
		if a.less(s[h].lo) {
			j = h
		} else {
			i = h + 1
		}
	}
	return i > 0 && !s[i-1].hi.less(a)
}

// mergeRanges sorts rs and merges overlapping and adjacent ranges. It reuses
// rs's backing array.
func mergeRanges(rs []rng) srcSet {
	if len(rs) == 0 {
		return nil
	}
	slices.SortFunc(rs, func(a, b rng) int {
		if a.lo == b.lo {
			return 0
		}
		if a.lo.less(b.lo) {
			return -1
		}
		return 1
	})
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if next, ok := succ(last.hi); ok && next.less(r.lo) {
			out = append(out, r)
			continue
		}
		if last.hi.less(r.hi) {
			last.hi = r.hi
		}
	}
	return slices.Clip(out)
}

// succ returns a+1, false when a is the largest address.
func succ(a u128) (u128, bool) {
	if a.lo != ^uint64(0) {
		return u128{hi: a.hi, lo: a.lo + 1}, true
	}
	if a.hi != ^uint64(0) {
		return u128{hi: a.hi + 1}, true
	}
	return a, false
}

// portTable holds who may reach one destination prefix over one protocol.
type portTable struct {
	all    srcSet   // sources allowed on every port (the only set for portless packets)
	starts []uint16 // elementary port segment starts, ascending, starts[0] == 0
	tree   []srcSet // bottom-up segment tree: leaves at [len(starts), 2*len(starts))
}

// match reports whether src may reach port (port < 0: a packet without
// ports, which only whole-port-range entries can admit).
func (t *portTable) match(src u128, port int) bool {
	if t.all.contains(src) {
		return true
	}
	n := len(t.starts)
	if port < 0 || n == 0 {
		return false
	}
	i, j := 0, n
	for i < j {
		h := int(uint(i+j) >> 1)
		if uint16(port) < t.starts[h] {
			j = h
		} else {
			i = h + 1
		}
	}
	for k := i - 1 + n; k > 0; k >>= 1 {
		if t.tree[k].contains(src) {
			return true
		}
	}
	return false
}

// dstKey identifies a destination table.
type dstKey struct {
	addr  u128
	bits  uint8
	proto uint8
}

// family is the compiled rule set of one address family.
type family struct {
	bits   []uint8 // distinct destination prefix lengths, longest first
	tables map[dstKey]*portTable
}

// ruleSet is an immutable compiled rule list; a nil *ruleSet accepts nothing.
type ruleSet struct {
	fam [2]family // [0] IPv4, [1] IPv6
	gen uint64    // set by SetRules, unique per Filter: flows remember it
	// For flow logs (compiled only when the filter records flows): the id
	// (wire.FilterRule.Rule) every rule shares, or, when they have
	// several, one compiled set per id in the order the ids first appear.
	single string
	byID   []idRules
}

// idRules are the rules of one policy rule id.
type idRules struct {
	id string
	rs *ruleSet
}

// ruleOf returns the id of the first rule (in the order of ids) that
// accepts the packet, "" if none does or the rules carry none. It costs
// one lookup per distinct id, so it is for a flow's first packet only.
func (rs *ruleSet) ruleOf(v6 bool, proto uint8, src, dst u128, port int) string {
	if rs == nil {
		return ""
	}
	if rs.byID == nil {
		return rs.single
	}
	for i := range rs.byID {
		if rs.byID[i].rs.allows(v6, proto, src, dst, port) {
			return rs.byID[i].id
		}
	}
	return ""
}

// compileIDs is compile plus, with ids, what ruleOf needs.
func compileIDs(rules []wire.FilterRule, ids bool) *ruleSet {
	rs := compile(rules)
	if !ids {
		return rs
	}
	var order []string
	groups := map[string][]wire.FilterRule{}
	for _, r := range rules {
		if len(r.CapGrant) > 0 {
			continue
		}
		if _, ok := groups[r.Rule]; !ok {
			order = append(order, r.Rule)
		}
		groups[r.Rule] = append(groups[r.Rule], r)
	}
	switch len(order) {
	case 0:
	case 1:
		rs.single = order[0]
	default:
		rs.byID = make([]idRules, len(order))
		for i, id := range order {
			rs.byID[i] = idRules{id: id, rs: compile(groups[id])}
		}
	}
	return rs
}

// allows reports whether some rule accepts a packet of proto from src to dst
// and port (port < 0: the packet has no ports or they cannot be read).
func (rs *ruleSet) allows(v6 bool, proto uint8, src, dst u128, port int) bool {
	if rs == nil {
		return false
	}
	f := &rs.fam[famIndex(v6)]
	for _, bits := range f.bits {
		t := f.tables[dstKey{addr: netmask(dst, int(bits), v6), bits: bits, proto: proto}]
		if t != nil && t.match(src, port) {
			return true
		}
	}
	return false
}

// famIndex maps a family to its ruleSet slot.
func famIndex(v6 bool) int {
	if v6 {
		return 1
	}
	return 0
}

// prefixRange converts a valid prefix to its family slot and address range.
func prefixRange(p netip.Prefix) (int, rng) {
	a, v6 := fromAddr(p.Addr())
	bits := p.Bits()
	lo := netmask(a, bits, v6)
	return famIndex(v6), rng{lo: lo, hi: broadcast(lo, bits, v6)}
}

// portPart is a rule's partial port range on one destination table.
type portPart struct {
	first, last uint16
	srcs        []rng
}

// tableBuilder collects one destination table before it is frozen.
type tableBuilder struct {
	all   []rng
	parts []portPart
}

// compile turns rules into a ruleSet. Invalid prefixes, inverted port ranges
// and protocol numbers outside 0-255 are skipped: they can only ever narrow
// what is accepted, never widen it. Capability rules (CapGrant set) are
// skipped whole: they allow no packet.
func compile(rules []wire.FilterRule) *ruleSet {
	builders := [2]map[dstKey]*tableBuilder{{}, {}}
	for _, r := range rules {
		if len(r.CapGrant) > 0 {
			// A capability rule says what its sources may do in an
			// application; it never admits a packet, even if it carries
			// ports.
			continue
		}
		var srcs [2][]rng
		for _, p := range r.SrcPrefixes {
			if !p.IsValid() {
				continue
			}
			fi, sr := prefixRange(p)
			srcs[fi] = append(srcs[fi], sr)
		}
		for _, d := range r.DstPorts {
			if !d.Prefix.IsValid() || d.First > d.Last {
				continue
			}
			fi, dr := prefixRange(d.Prefix)
			if len(srcs[fi]) == 0 {
				continue
			}
			protos := r.Protocols
			if len(protos) == 0 {
				protos = defaultProtocols[fi]
			}
			for _, pn := range protos {
				if pn < 0 || pn > 255 {
					continue
				}
				proto := uint8(pn)
				key := dstKey{addr: dr.lo, bits: uint8(d.Prefix.Bits()), proto: proto}
				b := builders[fi][key]
				if b == nil {
					b = &tableBuilder{}
					builders[fi][key] = b
				}
				switch {
				case isICMPProto(proto) || d.First == 0 && d.Last == 65535:
					b.all = append(b.all, srcs[fi]...)
				case hasPorts(proto):
					b.parts = append(b.parts, portPart{first: d.First, last: d.Last, srcs: srcs[fi]})
				}
				// A partial port range on a protocol without ports never
				// matches: there is no port to compare.
			}
		}
	}
	rs := &ruleSet{}
	for fi := range builders {
		f := &rs.fam[fi]
		f.tables = make(map[dstKey]*portTable, len(builders[fi]))
		for key, b := range builders[fi] {
			f.tables[key] = b.freeze()
			if !slices.Contains(f.bits, key.bits) {
				f.bits = append(f.bits, key.bits)
			}
		}
		slices.SortFunc(f.bits, func(a, b uint8) int { return cmp.Compare(b, a) })
	}
	return rs
}

// freeze builds the segment tree and merges every source set.
func (b *tableBuilder) freeze() *portTable {
	t := &portTable{all: mergeRanges(b.all)}
	if len(b.parts) == 0 {
		return t
	}
	starts := []uint16{0}
	for _, p := range b.parts {
		starts = append(starts, p.first)
		if p.last < 65535 {
			starts = append(starts, p.last+1)
		}
	}
	slices.Sort(starts)
	starts = slices.Compact(starts)
	n := len(starts)
	nodes := make([][]rng, 2*n)
	for _, p := range b.parts {
		l, _ := slices.BinarySearch(starts, p.first)
		r := n
		if p.last < 65535 {
			r, _ = slices.BinarySearch(starts, p.last+1)
		}
		// Canonical cover of leaves [l, r) in a bottom-up segment tree.
		for l, r = l+n, r+n; l < r; l, r = l>>1, r>>1 {
			if l&1 == 1 {
				nodes[l] = append(nodes[l], p.srcs...)
				l++
			}
			if r&1 == 1 {
				r--
				nodes[r] = append(nodes[r], p.srcs...)
			}
		}
	}
	t.starts = slices.Clip(starts)
	t.tree = make([]srcSet, 2*n)
	for i, rs := range nodes {
		t.tree[i] = mergeRanges(rs)
	}
	return t
}

// RuleFor reports whether rules accept a packet of proto from src to dst
// and port, and the id (wire.FilterRule.Rule) of the first rule that
// does ("" when it carries none), as the filter itself decides and flow
// logs name it. It compiles rules on every call: it is for a question
// asked now and then (whois), never for packets.
func RuleFor(rules []wire.FilterRule, src, dst netip.Addr, proto uint8, port uint16) (id string, ok bool) {
	s, v6 := fromAddr(src.Unmap())
	d, dv6 := fromAddr(dst.Unmap())
	if v6 != dv6 {
		return "", false
	}
	rs := compileIDs(rules, true)
	if !rs.allows(v6, proto, s, d, int(port)) {
		return "", false
	}
	return rs.ruleOf(v6, proto, s, d, int(port)), true
}
