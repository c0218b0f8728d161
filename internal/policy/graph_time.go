package policy

import (
	"container/heap"
	"slices"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// mfaEntry says that the node in slot may stop satisfying an mfa rule at
// at. Entries go stale when the node changes; they are checked on use.
type mfaEntry struct {
	at   time.Time
	slot int32
	id   wire.NodeID
}

type mfaHeap []mfaEntry

func (h mfaHeap) Len() int           { return len(h) }
func (h mfaHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h mfaHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *mfaHeap) Push(x any)        { *h = append(*h, x.(mfaEntry)) }
func (h *mfaHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

func (h *mfaHeap) push(e mfaEntry) { heap.Push(h, e) }

// valid reports whether e still describes its node.
func (g *Graph) validMFA(e mfaEntry) bool {
	if int(e.slot) >= len(g.nodes) {
		return false
	}
	n := g.nodes[e.slot]
	return n != nil && n.node.ID == e.id && n.mfaNext.Equal(e.at)
}

// compactMFA drops stale entries when they outnumber live ones.
func (g *Graph) compactMFA() {
	if len(g.mfa) <= 2*len(g.slots)+64 {
		return
	}
	live := g.mfa[:0]
	for _, e := range g.mfa {
		if g.validMFA(e) {
			live = append(live, e)
		}
	}
	g.mfa = live
	heap.Init(&g.mfa)
}

// mfaDeadline is the first instant at which n stops satisfying the mfa of
// a rule it is a source of now, or zero.
func (g *Graph) mfaDeadline(n *gnode) time.Time {
	var next time.Time
	for _, ri := range slices.Concat(n.srcRules, n.gatedRules) {
		if d := g.rules[ri].r.mfa; d > 0 {
			// Fresh while age <= d: stale one nanosecond later.
			t := n.node.MFAAt.Add(d + time.Nanosecond)
			if next.IsZero() || t.Before(next) {
				next = t
			}
		}
	}
	return next
}

// Advance moves the graph's clock to now, opening and closing time
// windows, expiring MFA freshness and ending grants whose Until has come. It returns every node whose peers
// or filter changed. Moving the clock backwards recompiles everything.
func (g *Graph) Advance(now time.Time) (affected []wire.NodeID) {
	if now.Before(g.now) {
		return g.rebuild(g.p, now)
	}
	g.now = now
	var aff bitset
	for _, ri := range g.p.whenRules {
		gr := g.rules[ri]
		if gr.next.IsZero() || now.Before(gr.next) {
			continue
		}
		if a := gr.r.when.active(now); a != gr.active {
			gr.active = a
			g.affectRule(&aff, gr)
			g.postureDirty.or(gr.gated)
			g.postureDirty.or(gr.mfaGated)
		}
		gr.next = gr.r.when.next(now)
	}
	for len(g.mfa) > 0 && !g.mfa[0].at.After(now) {
		e := heap.Pop(&g.mfa).(mfaEntry)
		if !g.validMFA(e) {
			continue
		}
		old := g.nodes[e.slot]
		nw := &gnode{subject: old.subject, node: old.node, slot: old.slot, postureOK: old.postureOK}
		g.postureDirty.set(e.slot)
		if g.update(e.slot, old, nw, &aff) {
			aff.set(e.slot)
		}
		g.nodes[e.slot] = nw
	}
	g.expireGrants(now, &aff)
	return g.ids(aff)
}

// AdvanceSplit is Advance that tells apart the nodes whose peers changed
// from those whose filter alone did (a time window opening a rule between
// nodes that were peers already, say), so the latter need only their
// filter. Nodes touched by MFA expiries and ending grants count as peers
// changed.
func (g *Graph) AdvanceSplit(now time.Time) (peers, filters []wire.NodeID) {
	if now.Before(g.now) {
		p, f := g.rebuildSplit(g.p, now)
		return g.ids(p), g.ids(f)
	}
	// The nodes the time windows due now will touch, and their peers
	// before.
	var windowed bitset
	for _, ri := range g.p.whenRules {
		gr := g.rules[ri]
		if !gr.next.IsZero() && !now.Before(gr.next) && gr.r.when.active(now) != gr.active {
			g.affectRule(&windowed, gr)
		}
	}
	before := map[int32]string{}
	windowed.each(func(s int32) bool {
		if int(s) < len(g.nodes) && g.nodes[s] != nil {
			before[s] = g.peerBits(s).key()
		}
		return true
	})
	for _, id := range g.Advance(now) {
		slot := g.slots[id]
		if b, ok := before[slot]; ok && b == g.peerBits(slot).key() {
			filters = append(filters, id)
		} else {
			peers = append(peers, id)
		}
	}
	return peers, filters
}

// affectRule adds every node whose peers or filter depend on gr.
func (g *Graph) affectRule(aff *bitset, gr *grule) {
	aff.or(gr.src)
	aff.or(gr.dst)
	if gr.r.hasSelf {
		gr.src.each(func(s int32) bool {
			g.addUser(aff, selfKey(g.nodes[s]))
			return true
		})
	}
}

// NextChange returns the earliest instant after the graph's clock at which
// Advance could change anything, or the zero time if none is known.
func (g *Graph) NextChange() time.Time {
	var next time.Time
	for _, ri := range g.p.whenRules {
		if t := g.rules[ri].next; !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for len(g.mfa) > 0 && !g.validMFA(g.mfa[0]) {
		heap.Pop(&g.mfa)
	}
	if len(g.mfa) > 0 {
		if t := g.mfa[0].at; next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if t := g.nextGrantExpiry(); !t.IsZero() && (next.IsZero() || t.Before(next)) {
		next = t
	}
	return next
}

// Now returns the graph's clock.
func (g *Graph) Now() time.Time { return g.now }
