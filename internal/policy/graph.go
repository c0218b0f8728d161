package policy

import (
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// Graph is a Policy compiled against the current set of nodes and kept up
// to date incrementally. It is not safe for concurrent use: its owner
// serializes every call, reads included.
type Graph struct {
	p     *Policy
	now   time.Time
	rules []*grule
	nodes []*gnode // by slot; nil: free
	slots map[wire.NodeID]int32
	free  []int32
	users map[string][]int32 // untagged nodes by owner login
	mfa   mfaHeap

	stamp []uint32 // per rule, to collect candidate rules without repeats
	epoch uint32

	caps      []capState // app grants' capability rules (capgrants.go)
	capsDirty bool       // caps must be rebuilt

	addrCount  map[netip.Prefix]int // addresses of all nodes, by how many nodes have each (srcpatch.go)
	routeCount map[netip.Prefix]int // approved subnet routes of all nodes, by how many nodes have each
	routeList  []netip.Prefix       // routeCount's keys, sorted; nil: to be rebuilt
	starRules  []int32              // rules with "*" as a source

	postureDirty bitset // nodes whose posture or MFA denials may have changed (graph_posture.go)

	grants grantState // just-in-time grants (graph_access.go)
}

// grule is the state of one rule in a graph.
type grule struct {
	r      *rule
	active bool      // its time window (if any) is open now
	next   time.Time // when active next changes; zero: never
	src    bitset    // nodes that are eligible sources now
	dst    bitset    // nodes selected by its destinations (not autogroup:self)
	ndst   int       // dst.count()
	// gated holds the nodes its sources select that none of its postures
	// admits (rules with srcPosture only): the nodes it may deny.
	gated bitset
	// mfaGated holds the nodes that fail it only because their MFA is
	// stale (rules with mfa only; graph_access.go).
	mfaGated bitset

	prefixes []netip.Prefix // SrcPrefixes; rebuilt when dirty, never mutated
	dirty    bool
	self     map[string][]netip.Prefix // SrcPrefixes of autogroup:self by user
	// compact and selfCompact are prefixes and self as CompactPrefixes
	// (compact.go), dropped whenever those are rebuilt; nil: not yet built.
	compact     *[]netip.Prefix
	selfCompact map[string][]netip.Prefix
	// patch turns prefixes into the current sources when dirty and
	// patchable (srcpatch.go); not patchable: rebuild from scratch.
	patch     srcPatch
	patchable bool
}

// gnode is the state of one node in a graph.
type gnode struct {
	subject
	node      Node // as given, cloned
	slot      int32
	postureOK []bool
	srcRules  []int32 // rules it is an eligible source of, ascending
	dstRules  []int32 // rules whose destinations select it, ascending
	// gatedRules are the rules with postures whose sources select it but
	// none of whose postures it satisfies, ascending.
	gatedRules []int32
	mfaNext    time.Time
	// mfaRules are the rules it fails only because its MFA is stale,
	// ascending; grantDst the grants whose destination selects it, by ID
	// (graph_access.go).
	mfaRules []int32
	grantDst []*ggrant
}

// NewGraph compiles p for the given nodes at time now. Nodes may also be
// added later with Upsert; passing them here skips computing what each
// addition affects.
func NewGraph(p *Policy, now time.Time, nodes ...Node) *Graph {
	g := &Graph{slots: map[wire.NodeID]int32{}, users: map[string][]int32{}}
	g.setRules(p, now)
	for _, n := range nodes {
		g.upsert(n, false)
	}
	return g
}

func (g *Graph) setRules(p *Policy, now time.Time) {
	g.p, g.now = p, now
	g.rules = make([]*grule, len(p.rules))
	for i, r := range p.rules {
		gr := &grule{r: r, active: true, dirty: true}
		if r.when != nil {
			gr.active = r.when.active(now)
			gr.next = r.when.next(now)
		}
		if r.hasSelf {
			gr.self = map[string][]netip.Prefix{}
			gr.selfCompact = map[string][]netip.Prefix{}
		}
		g.rules[i] = gr
	}
	g.routeCount, g.routeList, g.starRules = map[netip.Prefix]int{}, nil, nil
	for i, r := range p.rules {
		if r.srcStar {
			g.starRules = append(g.starRules, int32(i))
		}
	}
	g.stamp = make([]uint32, len(p.rules))
	g.epoch = 0
	g.caps, g.capsDirty = nil, true
}

// Policy returns the policy the graph is compiled from.
func (g *Graph) Policy() *Policy { return g.p }

// Upsert adds n or replaces the node with n's ID. It returns the other
// nodes whose peers or filter changed, in no particular order. The list is
// complete but not always minimal.
func (g *Graph) Upsert(n Node) (affected []wire.NodeID) {
	return g.upsert(n, true)
}

func (g *Graph) upsert(n Node, track bool) []wire.NodeID {
	slot, exists := g.slots[n.ID]
	var old *gnode
	if exists {
		old = g.nodes[slot]
	} else {
		slot = g.alloc(n.ID)
	}
	nw := g.prepare(n, slot)
	var aff bitset
	var affp *bitset
	if track {
		affp = &aff
	}
	g.update(slot, old, nw, affp)
	g.countAddrs(old, nw)
	g.nodes[slot] = nw
	aff.clear(slot)
	return g.ids(aff)
}

// Remove deletes the node with ID id, returning the nodes whose peers or
// filter changed.
func (g *Graph) Remove(id wire.NodeID) (affected []wire.NodeID) {
	slot, ok := g.slots[id]
	if !ok {
		return nil
	}
	var aff bitset
	g.update(slot, g.nodes[slot], nil, &aff)
	g.countAddrs(g.nodes[slot], nil)
	g.nodes[slot] = nil
	delete(g.slots, id)
	g.free = append(g.free, slot)
	aff.clear(slot)
	return g.ids(aff)
}

func (g *Graph) alloc(id wire.NodeID) int32 {
	var slot int32
	if n := len(g.free); n > 0 {
		slot, g.free = g.free[n-1], g.free[:n-1]
	} else {
		slot = int32(len(g.nodes))
		g.nodes = append(g.nodes, nil)
	}
	g.slots[id] = slot
	return slot
}

// ids lists the nodes in b, in slot order.
func (g *Graph) ids(b bitset) []wire.NodeID {
	n := b.count()
	if n == 0 {
		return nil
	}
	out := make([]wire.NodeID, 0, n)
	b.each(func(s int32) bool {
		if int(s) < len(g.nodes) && g.nodes[s] != nil {
			out = append(out, g.nodes[s].node.ID)
		}
		return true
	})
	return out
}

// prepare computes what the rules need to know about n.
func (g *Graph) prepare(n Node, slot int32) *gnode {
	n.Addresses = slices.Clone(n.Addresses)
	n.Groups = slices.Clone(n.Groups)
	n.Tags = slices.Clone(n.Tags)
	n.Attrs = maps.Clone(n.Attrs)
	n.Routes = slices.Clone(n.Routes)
	gn := &gnode{node: n, slot: slot}
	gn.subject = *g.p.nodeSubject(&gn.node)
	gn.postureOK = make([]bool, len(g.p.postures))
	for i, po := range g.p.postures {
		gn.postureOK[i], _ = po.check(gn.attrs)
	}
	return gn
}

// eligible reports whether n is a source of r now: selected by its
// sources, with one of its postures and fresh enough MFA.
func (g *Graph) eligible(r *rule, n *gnode) bool {
	if !r.srcMatches(&n.subject) && !r.srcRouteMatches(&n.subject) {
		return false
	}
	if len(r.postures) > 0 {
		ok := false
		for _, pi := range r.postures {
			if n.postureOK[pi] {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if r.mfa > 0 {
		if n.tagged || n.node.MFAAt.IsZero() || g.now.Sub(n.node.MFAAt) > r.mfa {
			return false
		}
	}
	return true
}

func (r *rule) srcMatches(x *subject) bool {
	for i := range r.src {
		if r.src[i].matches(x) {
			return true
		}
	}
	return false
}

// dstMatches reports whether a destination other than autogroup:self
// selects x.
func (r *rule) dstMatches(x *subject) bool {
	for i := range r.dst {
		if s := &r.dst[i].sel; s.kind != selSelf && s.matches(x) {
			return true
		}
	}
	return false
}

// selfKey is the user whose autogroup:self set n belongs to, or "".
func selfKey(n *gnode) string {
	if n == nil {
		return ""
	}
	return n.selfUser()
}

// candidates calls mark for every rule that may select x.
func (p *Policy) candidates(x *subject, mark func(int32)) {
	eachCandidate(p.generic, p.idx, x, mark)
}

// eachCandidate calls fn for every entry that may select x: those in
// generic, and those idx lists under x's tags ("t:"), or its user ("u:")
// and groups ("g:"). Rules and grants are indexed alike.
func eachCandidate[T any](generic []T, idx map[string][]T, x *subject, fn func(T)) {
	for _, e := range generic {
		fn(e)
	}
	if !x.isNode {
		return
	}
	if x.tagged {
		for _, t := range x.tags {
			for _, e := range idx["t:"+t] {
				fn(e)
			}
		}
		return
	}
	if x.user != "" {
		for _, e := range idx["u:"+x.user] {
			fn(e)
		}
	}
	for _, gname := range x.groups {
		for _, e := range idx["g:"+gname] {
			fn(e)
		}
	}
}

// update moves slot from state old to state nw (either may be nil),
// adjusting rule sets and indexes. With aff non-nil it adds the nodes
// whose peers or filter change. It reports whether any set membership of
// the node changed.
func (g *Graph) update(slot int32, old, nw *gnode, aff *bitset) (changed bool) {
	g.capUpdate(old, nw, aff)
	g.routesUpdate(old, nw, aff)
	g.grantsUpdate(slot, old, nw, aff)
	g.epoch++
	if g.epoch == 0 {
		clear(g.stamp)
		g.epoch = 1
	}
	var cands []int32
	mark := func(ri int32) {
		if g.stamp[ri] != g.epoch {
			g.stamp[ri] = g.epoch
			cands = append(cands, ri)
		}
	}
	if old != nil {
		for _, ri := range old.srcRules {
			mark(ri)
		}
		for _, ri := range old.dstRules {
			mark(ri)
		}
		for _, ri := range old.gatedRules {
			mark(ri)
		}
		for _, ri := range old.mfaRules {
			mark(ri)
		}
	}
	if nw != nil {
		g.p.candidates(&nw.subject, mark)
	}
	oldKey, newKey := selfKey(old), selfKey(nw)
	userChanged := oldKey != newKey
	if userChanged {
		for _, ri := range g.p.selfRules {
			mark(ri)
		}
	}
	addrsChanged := old != nil && nw != nil && !slices.Equal(old.addrs, nw.addrs)

	var srcRules, dstRules, gatedRules, mfaRules []int32
	for _, ri := range cands {
		gr := g.rules[ri]
		r := gr.r
		wasS := old != nil && gr.src.has(slot)
		wasD := old != nil && gr.dst.has(slot)
		isS := nw != nil && g.eligible(r, nw)
		isD := nw != nil && r.dstSelects(&nw.subject)
		if len(r.postures) > 0 {
			if nw != nil && !isS && g.deniedByPosture(r, nw) {
				gr.gated.set(slot)
				gatedRules = append(gatedRules, ri)
			} else {
				gr.gated.clear(slot)
			}
		}
		if r.mfa > 0 {
			if nw != nil && !isS && g.staleMFAOnly(r, nw) {
				gr.mfaGated.set(slot)
				mfaRules = append(mfaRules, ri)
			} else {
				gr.mfaGated.clear(slot)
			}
		}
		if wasD != isD {
			g.countDst(gr, isD)
		}
		if isS {
			gr.src.set(slot)
			srcRules = append(srcRules, ri)
		} else if wasS {
			gr.src.clear(slot)
		}
		if isD {
			gr.dst.set(slot)
			dstRules = append(dstRules, ri)
		} else if wasD {
			gr.dst.clear(slot)
		}
		if wasS != isS || wasD != isD {
			changed = true
		}
		// The addresses a source contributes change with its addresses,
		// and, when address sources select it, with which selector does.
		contribChanged := isS && wasS && (addrsChanged ||
			r.srcHasPrefix && !slices.Equal(r.srcAddrs(old), r.srcAddrs(nw)))
		srcChanged := wasS != isS || (contribChanged && !r.srcAll)
		selfChanged := r.hasSelf && (wasS != isS || contribChanged || (userChanged && (wasS || isS)))
		if srcChanged {
			g.noteSrcChange(gr, old, nw, wasS, isS, contribChanged)
		}
		if selfChanged {
			delete(gr.self, oldKey)
			delete(gr.self, newKey)
			delete(gr.selfCompact, oldKey)
			delete(gr.selfCompact, newKey)
		}
		if aff == nil || !gr.active {
			continue
		}
		if srcChanged {
			aff.or(gr.dst)
		}
		if selfChanged {
			if wasS {
				g.addUser(aff, oldKey)
			}
			if isS {
				g.addUser(aff, newKey)
			}
		}
		if wasD != isD {
			aff.or(gr.src)
		}
		if r.hasSelf && userChanged {
			g.addUserIn(aff, oldKey, gr.src)
			g.addUserIn(aff, newKey, gr.src)
		}
	}
	if userChanged {
		if oldKey != "" {
			list := g.users[oldKey]
			if i := slices.Index(list, slot); i >= 0 {
				list[i] = list[len(list)-1]
				list = list[:len(list)-1]
			}
			if len(list) == 0 {
				delete(g.users, oldKey)
			} else {
				g.users[oldKey] = list
			}
		}
		if newKey != "" {
			g.users[newKey] = append(g.users[newKey], slot)
		}
	}
	if nw != nil {
		slices.Sort(srcRules)
		slices.Sort(dstRules)
		slices.Sort(gatedRules)
		slices.Sort(mfaRules)
		nw.srcRules, nw.dstRules, nw.gatedRules, nw.mfaRules = srcRules, dstRules, gatedRules, mfaRules
		g.postureDirty.set(slot)
		nw.mfaNext = g.mfaDeadline(nw)
		if !nw.mfaNext.IsZero() && (old == nil || !old.mfaNext.Equal(nw.mfaNext)) {
			g.mfa.push(mfaEntry{at: nw.mfaNext, slot: slot, id: nw.node.ID})
			g.compactMFA()
		}
	}
	return changed
}

// addUser adds the untagged nodes of user.
func (g *Graph) addUser(aff *bitset, user string) {
	for _, s := range g.users[user] {
		aff.set(s)
	}
}

// addUserIn adds the untagged nodes of user that are in set.
func (g *Graph) addUserIn(aff *bitset, user string, set bitset) {
	for _, s := range g.users[user] {
		if set.has(s) {
			aff.set(s)
		}
	}
}

// Peers calls fn for every node id may reach or that may reach id under
// the rules active now, excluding id, until fn returns false. The relation
// is symmetric. fn must not call back into g.
func (g *Graph) Peers(id wire.NodeID, fn func(wire.NodeID) bool) {
	slot, ok := g.slots[id]
	if !ok {
		return
	}
	seen := g.peerBits(slot)
	seen.each(func(s int32) bool {
		if int(s) < len(g.nodes) && g.nodes[s] != nil {
			return fn(g.nodes[s].node.ID)
		}
		return true
	})
}

// peerBits returns the slots of the nodes slot may reach or that may reach
// it under the rules active now, without slot itself.
func (g *Graph) peerBits(slot int32) bitset {
	n := g.nodes[slot]
	key := selfKey(n)
	var seen bitset
	for _, ri := range n.srcRules {
		if gr := g.rules[ri]; gr.active {
			seen.or(gr.dst)
			if gr.r.hasSelf {
				g.addUser(&seen, key)
			}
		}
	}
	for _, ri := range n.dstRules {
		if gr := g.rules[ri]; gr.active {
			seen.or(gr.src)
		}
	}
	if key != "" {
		for _, ri := range g.p.selfRules {
			if gr := g.rules[ri]; gr.active {
				g.addUserIn(&seen, key, gr.src)
			}
		}
	}
	if len(g.p.appGrants) > 0 {
		g.capPeers(&seen, slot, key)
	}
	if len(g.grants.byID) > 0 {
		g.grantPeers(&seen, n)
	}
	seen.clear(slot)
	return seen
}
