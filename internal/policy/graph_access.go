package policy

import (
	"cmp"
	"container/heap"
	"slices"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// This file holds just-in-time grants in the graph: each lets one node
// (the requesting device, never its user's other devices) reach one
// destination until a deadline. A grant adds a filter rule (Rule: its
// Ref) to the nodes its destination selects and makes them peers of the
// granted node while it is in force; Advance withdraws it at Until like a
// closing time window, and NextChange includes the earliest Until.
// Grants survive SetPolicy; one whose destination no longer parses under
// the new policy stops counting (the caller ends it: see
// coordinator/access).
//
// A grant is stored by the granted node's ID, not its slot: a granted
// node that leaves the graph keeps its grant, which applies again if the
// node comes back before Until. Each grant keeps the set of nodes its
// destination selects, each node the grants whose destination selects it
// (gnode.grantDst), and grants are indexed by the tags, users and groups
// their destinations name, so Filter and Peers cost work proportional to
// the node's grants and a node's change to the grants that may select it,
// never to all grants. A destination behind a subnet router is not
// granted through the router: grants reach mesh nodes' own addresses.

// Grant is an approved just-in-time access request in force.
type Grant struct {
	ID   string      // the request's id ("ar-12")
	Node wire.NodeID // the requesting device
	// Dst is the granted destination, written like an acls destination
	// ("tag:prod-db:5432").
	Dst string
	// Rule is the access rule it was granted under ("access[0]"); the
	// filter rule it adds is named Rule + "/" + ID ("access[0]/ar-12").
	Rule  string
	Until time.Time
}

// ggrant is a grant in a graph.
type ggrant struct {
	Grant
	name string // its filter rule's name: Rule + "/" + ID
	dst  []dstEntry
	set  bitset // slots of the nodes its destination selects
	keys []string
}

// grantState is the graph's grants and their indexes.
type grantState struct {
	byID    map[string]*ggrant
	byNode  map[wire.NodeID][]*ggrant // by granted node
	idx     map[string][]*ggrant      // by "t:", "u:", "g:" + name in their destinations
	generic []*ggrant                 // grants with other destination selectors
	exp     grantHeap
}

type grantEntry struct {
	at time.Time
	gg *ggrant
}

type grantHeap []grantEntry

func (h grantHeap) Len() int           { return len(h) }
func (h grantHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h grantHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *grantHeap) Push(x any)        { *h = append(*h, x.(grantEntry)) }
func (h *grantHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// validGrant reports whether e is still the expiry of a grant in force.
func (gs *grantState) validGrant(e grantEntry) bool {
	return gs.byID[e.gg.ID] == e.gg
}

// selKey is the index key of a destination selector, or "" for the
// generic list.
func selKey(s *selector) string {
	switch s.kind {
	case selTag:
		return "t:" + s.name
	case selUser:
		return "u:" + s.name
	case selGroup:
		return "g:" + s.name
	}
	return ""
}

func (gg *ggrant) selects(x *subject) bool {
	for i := range gg.dst {
		if gg.dst[i].sel.matches(x) {
			return true
		}
	}
	return false
}

func newGGrant(gr Grant, dst []dstEntry) *ggrant {
	return &ggrant{Grant: gr, name: gr.Rule + "/" + gr.ID, dst: dst}
}

// index adds gg to the destination index.
func (gs *grantState) index(gg *ggrant) {
	if gs.idx == nil {
		gs.idx = map[string][]*ggrant{}
	}
	gg.keys = nil
	generic := false
	for i := range gg.dst {
		k := selKey(&gg.dst[i].sel)
		if k == "" {
			generic = true
		} else if !slices.Contains(gg.keys, k) {
			gg.keys = append(gg.keys, k)
		}
	}
	if generic {
		gg.keys = nil
		gs.generic = append(gs.generic, gg)
		return
	}
	for _, k := range gg.keys {
		gs.idx[k] = append(gs.idx[k], gg)
	}
}

// unindex removes gg from the destination index.
func (gs *grantState) unindex(gg *ggrant) {
	drop := func(list []*ggrant) []*ggrant {
		if i := slices.Index(list, gg); i >= 0 {
			return slices.Delete(list, i, i+1)
		}
		return list
	}
	if gg.keys == nil {
		gs.generic = drop(gs.generic)
		return
	}
	for _, k := range gg.keys {
		if l := drop(gs.idx[k]); len(l) > 0 {
			gs.idx[k] = l
		} else {
			delete(gs.idx, k)
		}
	}
}

// candidates calls fn for every grant whose destination may select x.
func (gs *grantState) candidates(x *subject, fn func(*ggrant)) {
	eachCandidate(gs.generic, gs.idx, x, fn)
}

// SetGrant adds gr or replaces the grant with its ID, returning the nodes
// whose peers or filter changed. It fails (changing nothing) if gr.Dst
// does not parse under the graph's policy. A grant whose Until is not
// after the graph's clock is not added.
func (g *Graph) SetGrant(gr Grant) (affected []wire.NodeID, err error) {
	dst, err := g.p.parseDst(gr.Dst)
	if err != nil {
		return nil, err
	}
	var aff bitset
	if old := g.grants.byID[gr.ID]; old != nil {
		g.dropGrant(old, &aff)
	}
	if gr.Until.After(g.now) {
		g.addGrant(newGGrant(gr, dst), &aff)
	}
	return g.ids(aff), nil
}

// addGrant puts gg in force, adding the nodes it affects to aff.
func (g *Graph) addGrant(gg *ggrant, aff *bitset) {
	gs := &g.grants
	if gs.byID == nil {
		gs.byID, gs.byNode = map[string]*ggrant{}, map[wire.NodeID][]*ggrant{}
	}
	gs.byID[gg.ID] = gg
	gs.byNode[gg.Node] = append(gs.byNode[gg.Node], gg)
	gs.index(gg)
	heap.Push(&gs.exp, grantEntry{at: gg.Until, gg: gg})
	for s, n := range g.nodes {
		if n != nil && gg.selects(&n.subject) {
			gg.set.set(int32(s))
			n.grantDst = insertGrant(n.grantDst, gg)
		}
	}
	g.affectGrant(gg, aff)
}

// dropGrant ends gg, adding the nodes it affects to aff.
func (g *Graph) dropGrant(gg *ggrant, aff *bitset) {
	gs := &g.grants
	g.affectGrant(gg, aff)
	delete(gs.byID, gg.ID)
	if l := slices.DeleteFunc(gs.byNode[gg.Node], func(x *ggrant) bool { return x == gg }); len(l) > 0 {
		gs.byNode[gg.Node] = l
	} else {
		delete(gs.byNode, gg.Node)
	}
	gs.unindex(gg)
	gg.set.each(func(s int32) bool {
		if n := g.nodes[s]; n != nil {
			n.grantDst = slices.DeleteFunc(n.grantDst, func(x *ggrant) bool { return x == gg })
		}
		return true
	})
	gg.set = nil
	// Its expiry entry goes stale and is dropped when it comes up.
}

// affectGrant adds the nodes whose peers or filter depend on gg: the
// granted node and its destinations, when the granted node is present.
func (g *Graph) affectGrant(gg *ggrant, aff *bitset) {
	if slot, ok := g.slots[gg.Node]; ok {
		aff.set(slot)
		aff.or(gg.set)
	}
}

// insertGrant adds gg to list, kept sorted by ID.
func insertGrant(list []*ggrant, gg *ggrant) []*ggrant {
	i, found := slices.BinarySearchFunc(list, gg.ID, func(x *ggrant, id string) int { return cmp.Compare(x.ID, id) })
	if found {
		list[i] = gg
		return list
	}
	return slices.Insert(list, i, gg)
}

// RemoveGrant removes the grant with ID id (if any), returning the nodes
// whose peers or filter changed.
func (g *Graph) RemoveGrant(id string) (affected []wire.NodeID) {
	gg := g.grants.byID[id]
	if gg == nil {
		return nil
	}
	var aff bitset
	g.dropGrant(gg, &aff)
	return g.ids(aff)
}

// Grants returns the grants in force, sorted by ID.
func (g *Graph) Grants() []Grant {
	out := make([]Grant, 0, len(g.grants.byID))
	for _, gg := range g.grants.byID {
		out = append(out, gg.Grant)
	}
	slices.SortFunc(out, func(a, b Grant) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// grantsUpdate moves slot's grant memberships from old to nw (either may
// be nil), as update does for rules, adding the nodes whose peers or
// filter change to aff when it is non-nil.
func (g *Graph) grantsUpdate(slot int32, old, nw *gnode, aff *bitset) {
	gs := &g.grants
	if len(gs.byID) == 0 {
		return
	}
	var list []*ggrant
	seen := map[*ggrant]bool{}
	visit := func(gg *ggrant) {
		if seen[gg] {
			return
		}
		seen[gg] = true
		was := old != nil && gg.set.has(slot)
		is := nw != nil && gg.selects(&nw.subject)
		if is {
			gg.set.set(slot)
			list = append(list, gg)
		} else if was {
			gg.set.clear(slot)
		}
		if aff != nil && was != is {
			if s, ok := g.slots[gg.Node]; ok {
				aff.set(s)
			}
		}
	}
	if old != nil {
		for _, gg := range old.grantDst {
			visit(gg)
		}
	}
	if nw != nil {
		gs.candidates(&nw.subject, visit)
		slices.SortFunc(list, func(a, b *ggrant) int { return cmp.Compare(a.ID, b.ID) })
		nw.grantDst = list
	}
	if aff == nil {
		return
	}
	// As the granted node: its destinations' filters name its addresses.
	var id wire.NodeID
	if nw != nil {
		id = nw.node.ID
	} else {
		id = old.node.ID
	}
	if mine := gs.byNode[id]; len(mine) > 0 && (old == nil || nw == nil || !slices.Equal(old.addrs, nw.addrs)) {
		for _, gg := range mine {
			aff.or(gg.set)
		}
	}
}

// expireGrants ends the grants whose Until is not after now.
func (g *Graph) expireGrants(now time.Time, aff *bitset) {
	gs := &g.grants
	for len(gs.exp) > 0 && !gs.exp[0].at.After(now) {
		e := heap.Pop(&gs.exp).(grantEntry)
		if gs.validGrant(e) {
			g.dropGrant(e.gg, aff)
		}
	}
}

// nextGrantExpiry is the earliest Until of the grants in force, or zero.
func (g *Graph) nextGrantExpiry() time.Time {
	gs := &g.grants
	for len(gs.exp) > 0 && !gs.validGrant(gs.exp[0]) {
		heap.Pop(&gs.exp)
	}
	if len(gs.exp) > 0 {
		return gs.exp[0].at
	}
	return time.Time{}
}

// reparseGrants re-reads every grant's destination under the graph's
// (new) policy before a rebuild recomputes the memberships; a grant whose
// destination no longer parses is dropped.
func (g *Graph) reparseGrants() {
	gs := &g.grants
	old := gs.byID
	gs.byID, gs.byNode, gs.idx, gs.generic, gs.exp = nil, nil, nil, nil, nil
	ids := make([]string, 0, len(old))
	for id := range old {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		gg := old[id]
		dst, err := g.p.parseDst(gg.Dst)
		if err != nil || !gg.Until.After(g.now) {
			continue
		}
		nw := newGGrant(gg.Grant, dst)
		if gs.byID == nil {
			gs.byID, gs.byNode = map[string]*ggrant{}, map[wire.NodeID][]*ggrant{}
		}
		gs.byID[id] = nw
		gs.byNode[nw.Node] = append(gs.byNode[nw.Node], nw)
		gs.index(nw)
		heap.Push(&gs.exp, grantEntry{at: nw.Until, gg: nw})
	}
}

// grantFilter returns the filter rules of the grants in force that reach
// n: for each (by ID) whose granted node is present, the granted node's
// addresses to n's addresses its destination selects, on its ports.
func (g *Graph) grantFilter(n *gnode) []wire.FilterRule {
	var out []wire.FilterRule
	for _, gg := range n.grantDst {
		slot, ok := g.slots[gg.Node]
		if !ok {
			continue
		}
		src := g.nodes[slot].addrs
		if len(src) == 0 {
			continue
		}
		if dst := entriesPorts(gg.dst, n, false); len(dst) > 0 {
			out = append(out, wire.FilterRule{SrcPrefixes: src, DstPorts: dst, Rule: gg.name})
		}
	}
	return out
}

// grantPeers adds the nodes slot's grants make its peers: its grants'
// destinations, and the granted nodes of grants whose destination
// selects it.
func (g *Graph) grantPeers(seen *bitset, n *gnode) {
	for _, gg := range g.grants.byNode[n.node.ID] {
		seen.or(gg.set)
	}
	for _, gg := range n.grantDst {
		if s, ok := g.slots[gg.Node]; ok {
			seen.set(s)
		}
	}
}

// MFADenials lists the rules node id fails only because its user's MFA
// is older than the rule's "mfa" (or missing): its sources select the
// node, the rule applies now, and it passes every other condition. Its
// cost is proportional to the node's rules, never to the mesh.
func (g *Graph) MFADenials(id wire.NodeID) []wire.MFADenial {
	slot, ok := g.slots[id]
	if !ok {
		return nil
	}
	n := g.nodes[slot]
	var out []wire.MFADenial
	for _, ri := range n.mfaRules {
		gr := g.rules[ri]
		r := gr.r
		if !gr.active {
			continue
		}
		others := gr.ndst > 1 || gr.ndst == 1 && !gr.dst.has(slot)
		for i := range r.dst {
			d := &r.dst[i]
			if d.sel.kind != selSelf && !others {
				continue // no destination node to reach
			}
			out = append(out, wire.MFADenial{Destination: d.text, Rule: r.ref, MaxAge: r.mfa})
		}
	}
	slices.SortFunc(out, func(a, b wire.MFADenial) int {
		return cmp.Or(cmp.Compare(a.Destination, b.Destination), cmp.Compare(a.Rule, b.Rule))
	})
	return slices.Compact(out)
}

// staleMFAOnly reports whether n fails r (which has "mfa") only because
// its user's MFA is too old: r's sources select it, one of its postures
// (if any) admits it, and it is an untagged node.
func (g *Graph) staleMFAOnly(r *rule, n *gnode) bool {
	if r.mfa == 0 || n.tagged || n.user == "" {
		return false
	}
	if !n.node.MFAAt.IsZero() && g.now.Sub(n.node.MFAAt) <= r.mfa {
		return false
	}
	if !r.srcMatches(&n.subject) && !r.srcRouteMatches(&n.subject) {
		return false
	}
	if len(r.postures) == 0 {
		return true
	}
	for _, pi := range r.postures {
		if n.postureOK[pi] {
			return true
		}
	}
	return false
}
