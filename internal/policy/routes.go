package policy

import (
	"net/netip"
	"slices"

	"github.com/warrenmesh/warren/internal/wire"
)

// Subnet routes and exit nodes, as Tailscale's control plane compiles
// them (its recorded filters and peers in the conformance suite are the
// oracle; ops/policy/README.md says it for admins):
//
//   - A node's approved routes are part of what it can be a destination
//     for. A destination IP, CIDR or host alias that overlaps a router's
//     approved subnet route selects the router: its filter allows the
//     rule's sources to the part of the destination inside that route
//     (Tailscale writes the destination as written; a router only ever
//     receives packets for its addresses and routes, so the clipped
//     prefix allows exactly the same), and the router and the sources
//     become peers. Nothing else of the router is opened: not its own
//     addresses, not its other routes.
//   - "*" as a destination selects every node and, on a router, all of
//     its approved routes, exit routes included (Tailscale writes "*" as
//     0.0.0.0/0 and ::/0, so an exit node accepts anything the rule's
//     sources send through it).
//   - "*" as a source is the mesh's ranges plus every approved subnet
//     route of every node; exit routes (0.0.0.0/0, ::/0) are left out.
//     Other sources (users, groups, tags, autogroups) stand for nodes'
//     own addresses only, never their routes.
//   - autogroup:internet as a destination selects the approved exit
//     nodes, and their filter allows the public internet (internetRanges)
//     to the rule's sources. A CIDR destination never selects an exit
//     node through its exit routes: only autogroup:internet and "*" do
//     (Warren's choice where no recording shows Tailscale's; it can only
//     grant less).
//   - An IP, CIDR or host source that overlaps a router's approved
//     subnet route makes the router a peer of the rule's destinations
//     (traffic from the subnet enters through it); the rule's sources
//     stay as written and the router's own addresses are not added.
//   - A grant's "via" (tags) restricts its routed destinations to the
//     routers with one of those tags: only they get the filter for them,
//     and only they become the sources' peers for them. Its destinations
//     are reached only through such routers, never directly.

// isExitRoute reports whether p is an exit route (0.0.0.0/0 or ::/0).
func isExitRoute(p netip.Prefix) bool { return p.Bits() == 0 }

// normalRoutes returns rs masked, unmapped, valid, sorted and deduplicated.
func normalRoutes(rs []netip.Prefix) []netip.Prefix {
	if len(rs) == 0 {
		return nil
	}
	out := make([]netip.Prefix, 0, len(rs))
	for _, r := range rs {
		if !r.IsValid() {
			continue
		}
		a := r.Addr()
		bits := r.Bits()
		if a.Is4In6() {
			if bits < 96 {
				continue
			}
			a, bits = a.Unmap(), bits-96
		}
		out = append(out, netip.PrefixFrom(a.WithZone(""), bits).Masked())
	}
	return dedupPrefixes(out)
}

// subnetRoutes returns the routes of x that are not exit routes.
func (x *subject) subnetRoutes() []netip.Prefix {
	var out []netip.Prefix
	for _, r := range x.routes {
		if !isExitRoute(r) {
			out = append(out, r)
		}
	}
	return out
}

// routeMatches reports whether s selects x through x's approved routes.
func (s *selector) routeMatches(x *subject) bool {
	switch s.kind {
	case selPrefix:
		for _, r := range x.routes {
			if !isExitRoute(r) && r.Overlaps(s.prefix) {
				return true
			}
		}
	case selInternet:
		for _, r := range x.routes {
			if isExitRoute(r) {
				return true
			}
		}
	case selAll:
		return len(x.routes) > 0
	}
	return false
}

// matchesRouted reports whether destination selector s selects address
// x (not a node) of a test or Explain query, through any router the
// policy's rules allow: "*" is every address (on a router it covers all
// of its routes, exit routes included), autogroup:internet the public
// address space (internetRanges); the other kinds match as usual.
func (s *selector) matchesRouted(x *subject) bool {
	switch s.kind {
	case selAll:
		return len(x.addrs) > 0
	case selInternet:
		for _, a := range x.addrs {
			if !insideAny(internetRanges, a) {
				return false
			}
		}
		return len(x.addrs) > 0
	}
	return s.matches(x)
}

// viaMatches reports whether x is a router r's routed destinations may go
// through: any router when r has no via, else one with a via tag.
func (r *rule) viaMatches(x *subject) bool {
	if len(r.via) == 0 {
		return true
	}
	if !x.isNode || !x.tagged {
		return false
	}
	for _, t := range r.via {
		if contains(x.tags, t) {
			return true
		}
	}
	return false
}

// srcRouteMatches reports whether an IP, CIDR or host source of r
// overlaps one of x's approved subnet routes. Tailscale then counts the
// router as a source for peers (traffic from that subnet enters the mesh
// through it), though none of its own addresses is added to the rule's
// sources (srcAddrs returns only those inside the address sources).
func (r *rule) srcRouteMatches(x *subject) bool {
	if !r.srcHasPrefix || len(x.routes) == 0 {
		return false
	}
	for i := range r.src {
		if s := &r.src[i]; s.kind == selPrefix && s.routeMatches(x) {
			return true
		}
	}
	return false
}

// dstSelects reports whether r's destinations select x for its packet
// filter: directly (not autogroup:self) or through its routes.
func (r *rule) dstSelects(x *subject) bool {
	if len(r.via) == 0 && r.dstMatches(x) {
		return true
	}
	if len(x.routes) == 0 || !r.viaMatches(x) {
		return false
	}
	for i := range r.dst {
		if r.dst[i].sel.routeMatches(x) {
			return true
		}
	}
	return false
}

// routedPorts lists the destinations of r inside n's approved routes,
// times their ports.
func routedPorts(r *rule, n *gnode) []wire.PortRange {
	if len(n.routes) == 0 || !r.viaMatches(&n.subject) {
		return nil
	}
	var out []wire.PortRange
	add := func(p netip.Prefix, ports []portRange) {
		for _, pr := range ports {
			out = append(out, wire.PortRange{Prefix: p, First: pr.first, Last: pr.last})
		}
	}
	for i := range r.dst {
		d := &r.dst[i]
		for _, rt := range n.routes {
			switch d.sel.kind {
			case selAll:
				add(rt, d.ports)
			case selPrefix:
				if isExitRoute(rt) || !rt.Overlaps(d.sel.prefix) {
					continue
				}
				if rt.Bits() >= d.sel.prefix.Bits() {
					add(rt, d.ports)
				} else {
					add(d.sel.prefix, d.ports)
				}
			case selInternet:
				if !isExitRoute(rt) {
					continue
				}
				for _, ip := range internetRanges {
					if ip.Addr().BitLen() == rt.Addr().BitLen() {
						add(ip, d.ports)
					}
				}
			}
		}
	}
	return out
}

// starRoutes returns the approved subnet routes of every node, which "*"
// as a source stands for beside the mesh's ranges.
func (g *Graph) starRoutes() []netip.Prefix {
	if g.routeList == nil && len(g.routeCount) > 0 {
		g.routeList = make([]netip.Prefix, 0, len(g.routeCount))
		for p := range g.routeCount {
			g.routeList = append(g.routeList, p)
		}
		slices.SortFunc(g.routeList, wire.ComparePrefix)
	}
	return g.routeList
}

// routesUpdate counts the subnet routes of a node moving from old to nw
// (either may be nil). When the set of routes in the mesh changes, every
// rule with "*" as a source changes its sources, and with aff non-nil
// the nodes it selects are affected.
func (g *Graph) routesUpdate(old, nw *gnode, aff *bitset) {
	var or, nr []netip.Prefix
	if old != nil {
		or = old.subnetRoutes()
	}
	if nw != nil {
		nr = nw.subnetRoutes()
	}
	if slices.Equal(or, nr) {
		return
	}
	changed := false
	for _, p := range nr {
		if g.routeCount[p]++; g.routeCount[p] == 1 {
			changed = true
		}
	}
	for _, p := range or {
		if g.routeCount[p]--; g.routeCount[p] <= 0 {
			delete(g.routeCount, p)
			changed = true
		}
	}
	if !changed {
		return
	}
	g.routeList = nil
	for _, ri := range g.starRules {
		gr := g.rules[ri]
		gr.dirty, gr.patchable = true, false
		if aff != nil && gr.active {
			aff.or(gr.dst)
		}
	}
}

// internetRanges is what autogroup:internet allows on an exit node: every
// IPv4 address and the global unicast IPv6 range 2000::/3, less the
// private ranges (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7),
// the mesh's ranges (100.64.0.0/10, fd7a:115c:a1e0::/48) and link-local
// addresses (169.254.0.0/16, fe80::/10). This is the set headscale's
// reimplementation uses for it; Tailscale's recordings in the conformance
// suite have no approved exit node with autogroup:internet to check it
// against.
var internetRanges = subtractPrefixes(
	[]netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("2000::/3")},
	"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7",
	"100.64.0.0/10", "fd7a:115c:a1e0::/48", "169.254.0.0/16", "fe80::/10",
)

// subtractPrefixes returns the prefixes covering base less the removed
// ones, in address order.
func subtractPrefixes(base []netip.Prefix, remove ...string) []netip.Prefix {
	out := slices.Clone(base)
	for _, s := range remove {
		rm := netip.MustParsePrefix(s)
		var next []netip.Prefix
		for _, p := range out {
			next = append(next, subtractOne(p, rm)...)
		}
		out = next
	}
	slices.SortFunc(out, wire.ComparePrefix)
	return out
}

// subtractOne returns p less rm as prefixes.
func subtractOne(p, rm netip.Prefix) []netip.Prefix {
	switch {
	case !p.Overlaps(rm):
		return []netip.Prefix{p}
	case rm.Bits() <= p.Bits():
		return nil // rm covers p
	}
	// Split p in halves and keep subtracting from the half holding rm.
	lo := netip.PrefixFrom(p.Addr(), p.Bits()+1)
	b := p.Addr().AsSlice()
	i := p.Bits()
	b[i/8] |= 0x80 >> (i % 8)
	hiAddr, _ := netip.AddrFromSlice(b)
	hi := netip.PrefixFrom(hiAddr, p.Bits()+1)
	return append(subtractOne(lo, rm), subtractOne(hi, rm)...)
}
