package policy

import (
	"encoding/json"
	"net/netip"
	"slices"

	"github.com/warrenmesh/warren/internal/wire"
)

// Application capabilities of grants reach their destination nodes the
// way Tailscale delivers them: inside the node's packet filter, as
// capability rules (tailcfg.FilterRule's CapGrant) keyed by source
// prefixes. A capability rule carries no ports and never admits a packet
// (node/filter skips it); it grants only what an application on the
// destination chooses to read from it. Its sources are computed exactly
// as an ip grant's with the same src and srcPosture, so a capability is
// never given to more sources than the same grant's network access would
// reach. As in Tailscale, an app grant makes its sources and destination
// nodes peers (they see each other in their netmaps), even with no ip
// grant between them; peers carry no access: only the packet filter
// admits packets.
//
// What Tailscale does beyond this (read in tailcfg and in headscale's
// policy v2, which reproduces Tailscale's recorded filters) and Warren
// does not yet: for its own tailscale.com/cap/drive and
// tailscale.com/cap/relay it also sends the sources a reversed
// "companion" rule (drive-sharer, relay-target) naming the destinations;
// Warren's node has neither feature, so nothing is lost, and the
// difference is listed in ops/policy/README.md.

// capRule is the source and destination selection of one grant's app
// capabilities, as a rule whose ports are never used.
func (ps *parser) capRule(i, off int, text string, srcs, dsts []selector, dstNames []string, postures []int, hasIP bool) *rule {
	r := &rule{index: i, section: "grants", off: off, text: text, src: srcs, postures: postures}
	for k, sel := range dsts {
		r.dst = append(r.dst, dstEntry{sel: sel, ports: allPorts, off: off, text: dstNames[k]})
	}
	// The grant's ip rules (if any) warn about what finish warns
	// about; say it once.
	nw := len(ps.warns)
	r.finish(ps)
	if hasIP {
		ps.warns = ps.warns[:nw]
	}
	return r
}

// capState is the compiled state of one grant's app capabilities in a
// graph: its eligible sources (gr.src), the nodes its destinations give
// capabilities to (dst; selfDst for autogroup:self, per user), rebuilt
// from scratch after any change.
type capState struct {
	gr      *grule
	caps    map[string][]json.RawMessage
	dst     bitset
	selfDst bitset
}

// capStates returns the state of every app grant, rebuilding it when a
// node or the policy changed since.
func (g *Graph) capStates() []capState {
	if !g.capsDirty {
		return g.caps
	}
	g.caps = g.caps[:0]
	for _, a := range g.p.appGrants {
		if a.r == nil {
			continue
		}
		gr := &grule{r: a.r, active: true, dirty: true, self: map[string][]netip.Prefix{}, selfCompact: map[string][]netip.Prefix{}}
		cs := capState{gr: gr, caps: a.Caps}
		for s, n := range g.nodes {
			if n == nil {
				continue
			}
			if g.eligible(a.r, n) {
				gr.src.set(int32(s))
			}
			if len(capDsts(a.r, n, false)) > 0 {
				cs.dst.set(int32(s))
			}
			if a.r.hasSelf && len(capDsts(a.r, n, true)) > 0 {
				cs.selfDst.set(int32(s))
			}
		}
		g.caps = append(g.caps, cs)
	}
	g.capsDirty = false
	return g.caps
}

// capFilter returns node n's capability rules, in grant order.
func (g *Graph) capFilter(n *gnode, key string, compact bool) []wire.FilterRule {
	var out []wire.FilterRule
	for _, cs := range g.capStates() {
		gr := cs.gr
		if dsts := capDsts(gr.r, n, false); len(dsts) > 0 {
			src := g.prefixes(gr)
			if compact {
				src = g.compactPrefixes(gr)
			}
			if len(src) > 0 {
				out = append(out, wire.FilterRule{SrcPrefixes: src, CapGrant: []wire.CapGrant{{Dsts: dsts, CapMap: cs.caps}}, Rule: gr.r.ref})
			}
		}
		if key != "" && gr.r.hasSelf {
			if dsts := capDsts(gr.r, n, true); len(dsts) > 0 {
				src := g.selfPrefixes(gr, key)
				if compact {
					src = g.compactSelfPrefixes(gr, key)
				}
				if len(src) > 0 {
					out = append(out, wire.FilterRule{SrcPrefixes: src, CapGrant: []wire.CapGrant{{Dsts: dsts, CapMap: cs.caps}}, Rule: gr.r.ref})
				}
			}
		}
	}
	return out
}

// capDsts lists n's addresses that r's destinations (the autogroup:self
// ones when self) select. A grant with via reaches its destinations only
// through routers, and Warren does not deliver capabilities for routed
// destinations (Tailscale gives them to the routers; Warren's routers
// have no use for them yet): such a grant's capabilities go to no node,
// never to a node inside its destinations directly.
func capDsts(r *rule, n *gnode, self bool) []netip.Prefix {
	if len(r.via) > 0 {
		return nil
	}
	ports := dstPorts(r, n, self)
	if len(ports) == 0 {
		return nil
	}
	out := make([]netip.Prefix, 0, len(ports))
	for _, p := range ports {
		out = append(out, p.Prefix)
	}
	slices.SortFunc(out, wire.ComparePrefix)
	return slices.Compact(out)
}

// capPeers adds to seen the nodes that app grants make peers of the node
// in slot (user key): destinations of the grants it is a source of, and
// sources of the grants it is a destination of.
func (g *Graph) capPeers(seen *bitset, slot int32, key string) {
	for _, cs := range g.capStates() {
		src := &cs.gr.src
		if src.has(slot) {
			seen.or(cs.dst)
			if cs.gr.r.hasSelf && key != "" {
				g.addUserIn(seen, key, cs.selfDst)
			}
		}
		if cs.dst.has(slot) {
			seen.or(*src)
		}
		if cs.gr.r.hasSelf && key != "" && cs.selfDst.has(slot) {
			g.addUserIn(seen, key, *src)
		}
	}
}

// capUpdate notes that a node moves from old to nw (either may be nil):
// the capability rules are rebuilt, and with aff non-nil every node whose
// capability rules or peers may change is added to it.
func (g *Graph) capUpdate(old, nw *gnode, aff *bitset) {
	if len(g.p.appGrants) == 0 {
		return
	}
	g.capsDirty = true
	if aff == nil {
		return
	}
	oldKey, newKey := selfKey(old), selfKey(nw)
	for _, a := range g.p.appGrants {
		r := a.r
		if r == nil {
			continue
		}
		isDst := func(n *gnode) bool {
			return n != nil && (len(capDsts(r, n, false)) > 0 || (r.hasSelf && len(capDsts(r, n, true)) > 0))
		}
		if isDst(old) || isDst(nw) {
			// The grant's sources gain or lose it as a peer.
			for s, n := range g.nodes {
				if n != nil && g.eligible(r, n) {
					aff.set(int32(s))
				}
			}
		}
		if !(old != nil && g.eligible(r, old)) && !(nw != nil && g.eligible(r, nw)) {
			continue
		}
		for s, n := range g.nodes {
			if n != nil && r.dstMatches(&n.subject) {
				aff.set(int32(s))
			}
		}
		if r.hasSelf {
			g.addUser(aff, oldKey)
			g.addUser(aff, newKey)
		}
	}
}
