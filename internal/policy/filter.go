package policy

import (
	"net/netip"
	"slices"
	"sort"

	"github.com/warrenmesh/warren/internal/wire"
)

// Filter returns the inbound packet filter of node id: one rule per
// active acls rule or ip grant that selects it, directly or through its
// approved routes (routes.go; two when autogroup:self does too), then one rule
// per just-in-time grant whose destination selects it (graph_access.go), then one capability rule (CapGrant set, no ports: it allows
// no packet) per grant whose app capabilities select it. An empty filter
// denies everything. SrcPrefixes, Protocols and CapMap are shared between
// nodes and calls and must not be modified.
func (g *Graph) Filter(id wire.NodeID) []wire.FilterRule {
	return g.filter(id, false)
}

// CompactFilter is Filter with the sources of acls rules and ip grants
// as CompactPrefixes: the same addresses in far fewer prefixes when the
// mesh's addresses run densely. Each rule's compact sources are computed
// once per change of the rule and shared, like Filter's.
func (g *Graph) CompactFilter(id wire.NodeID) []wire.FilterRule {
	return g.filter(id, true)
}

func (g *Graph) filter(id wire.NodeID, compact bool) []wire.FilterRule {
	slot, ok := g.slots[id]
	if !ok {
		return nil
	}
	n := g.nodes[slot]
	key := selfKey(n)
	var self []int32
	if key != "" {
		self = g.p.selfRules
	}
	var out []wire.FilterRule
	i, j := 0, 0
	for i < len(n.dstRules) || j < len(self) {
		ri := int32(-1)
		inDst, inSelf := false, false
		switch {
		case j >= len(self) || (i < len(n.dstRules) && n.dstRules[i] < self[j]):
			ri, inDst = n.dstRules[i], true
			i++
		case i >= len(n.dstRules) || self[j] < n.dstRules[i]:
			ri, inSelf = self[j], true
			j++
		default:
			ri, inDst, inSelf = self[j], true, true
			i++
			j++
		}
		gr := g.rules[ri]
		if !gr.active {
			continue
		}
		if inDst {
			src := g.prefixes(gr)
			if compact {
				src = g.compactPrefixes(gr)
			}
			if len(src) > 0 {
				var dst []wire.PortRange
				if len(gr.r.via) == 0 {
					dst = dstPorts(gr.r, n, false)
				}
				if routed := routedPorts(gr.r, n); len(routed) > 0 {
					dst = sortPorts(append(dst, routed...))
				}
				if len(dst) > 0 {
					out = append(out, wire.FilterRule{SrcPrefixes: src, DstPorts: dst, Protocols: gr.r.protos, Rule: gr.r.ref})
				}
			}
		}
		if inSelf && len(gr.r.via) == 0 {
			src := g.selfPrefixes(gr, key)
			if compact {
				src = g.compactSelfPrefixes(gr, key)
			}
			if len(src) > 0 {
				if dst := dstPorts(gr.r, n, true); len(dst) > 0 {
					out = append(out, wire.FilterRule{SrcPrefixes: src, DstPorts: dst, Protocols: gr.r.protos, Rule: gr.r.ref})
				}
			}
		}
	}
	if len(n.grantDst) > 0 {
		out = append(out, g.grantFilter(n)...)
	}
	if len(g.p.appGrants) > 0 {
		out = append(out, g.capFilter(n, key, compact)...)
	}
	return out
}

// dstPorts lists n's addresses selected by r's destinations (the
// autogroup:self ones when self), times their ports.
func dstPorts(r *rule, n *gnode, self bool) []wire.PortRange {
	return entriesPorts(r.dst, n, self)
}

// entriesPorts lists n's addresses selected by the destinations ds (the
// autogroup:self ones when self), times their ports.
func entriesPorts(ds []dstEntry, n *gnode, self bool) []wire.PortRange {
	var out []wire.PortRange
	matched := 0
	for i := range ds {
		d := &ds[i]
		if self != (d.sel.kind == selSelf) || (!self && !d.sel.matches(&n.subject)) {
			continue
		}
		matched++
		for _, a := range n.addrs {
			if d.sel.kind == selPrefix && !(d.sel.prefix.Bits() <= a.Bits() && d.sel.prefix.Contains(a.Addr())) {
				continue
			}
			for _, pr := range d.ports {
				out = append(out, wire.PortRange{Prefix: a, First: pr.first, Last: pr.last})
			}
		}
	}
	if matched > 1 {
		out = sortPorts(out)
	}
	return out
}

// sortPorts sorts ps by prefix and ports and removes repeats.
func sortPorts(ps []wire.PortRange) []wire.PortRange {
	sort.Slice(ps, func(i, j int) bool {
		if c := wire.ComparePrefix(ps[i].Prefix, ps[j].Prefix); c != 0 {
			return c < 0
		}
		if ps[i].First != ps[j].First {
			return ps[i].First < ps[j].First
		}
		return ps[i].Last < ps[j].Last
	})
	return slices.Compact(ps)
}

// prefixes returns the rule's SrcPrefixes: its literal sources and the
// addresses of its eligible source nodes not inside them.
func (g *Graph) prefixes(gr *grule) []netip.Prefix {
	if !gr.dirty {
		return gr.prefixes
	}
	if gr.patchable {
		if out, ok := patched(gr.prefixes, gr.patch); ok {
			gr.prefixes, gr.dirty, gr.compact = out, false, nil
			clear(gr.patch)
			return out
		}
	}
	r := gr.r
	var out []netip.Prefix
	if r.srcAll {
		out = slices.Clone(r.srcLiterals)
		if r.srcStar {
			if routes := g.starRoutes(); len(routes) > 0 {
				out = dedupPrefixes(append(out, routes...))
			}
		}
	} else {
		out = make([]netip.Prefix, len(r.srcLiterals), len(r.srcLiterals)+2*gr.src.count())
		copy(out, r.srcLiterals)
		lits := r.srcLiterals
		if len(lits) > 16 {
			lits = nil // dedup below still removes exact repeats
		}
		gr.src.each(func(s int32) bool {
			for _, a := range r.srcAddrs(g.nodes[s]) {
				if !insideAny(lits, a) {
					out = append(out, a)
				}
			}
			return true
		})
		out = dedupPrefixes(out)
	}
	gr.prefixes, gr.dirty = out, false
	gr.compact, gr.patchable = nil, true
	clear(gr.patch)
	return out
}

// compactPrefixes is prefixes as CompactPrefixes, computed once per
// rebuild of the list.
func (g *Graph) compactPrefixes(gr *grule) []netip.Prefix {
	ps := g.prefixes(gr)
	if gr.compact == nil {
		c := CompactPrefixes(ps)
		gr.compact = &c
	}
	return *gr.compact
}

// compactSelfPrefixes is selfPrefixes as CompactPrefixes, computed once
// per rebuild of the list.
func (g *Graph) compactSelfPrefixes(gr *grule, user string) []netip.Prefix {
	if ps, ok := gr.selfCompact[user]; ok {
		return ps
	}
	ps := CompactPrefixes(g.selfPrefixes(gr, user))
	gr.selfCompact[user] = ps
	return ps
}

func insideAny(ps []netip.Prefix, a netip.Prefix) bool {
	for _, p := range ps {
		if p.Bits() <= a.Bits() && p.Contains(a.Addr()) {
			return true
		}
	}
	return false
}

// selfPrefixes returns the addresses of user's nodes that are eligible
// sources of gr, for its autogroup:self destinations.
func (g *Graph) selfPrefixes(gr *grule, user string) []netip.Prefix {
	r := gr.r
	if ps, ok := gr.self[user]; ok {
		return ps
	}
	var out []netip.Prefix
	for _, s := range g.users[user] {
		if gr.src.has(s) {
			out = append(out, r.srcAddrs(g.nodes[s])...)
		}
	}
	out = dedupPrefixes(out)
	gr.self[user] = out
	return out
}

// srcAddrs returns the addresses by which node n is a source of r: all
// of them when a user, group, tag, autogroup or * selects it, else only
// those inside the IP, CIDR and host sources that select it.
func (r *rule) srcAddrs(n *gnode) []netip.Prefix {
	if !r.srcHasPrefix {
		return n.addrs
	}
	for i := range r.src {
		if s := &r.src[i]; s.kind != selPrefix && s.matches(&n.subject) {
			return n.addrs
		}
	}
	var out []netip.Prefix
	for _, a := range n.addrs {
		for i := range r.src {
			if s := &r.src[i]; s.kind == selPrefix && s.prefix.Bits() <= a.Bits() && s.prefix.Contains(a.Addr()) {
				out = append(out, a)
				break
			}
		}
	}
	return out
}
