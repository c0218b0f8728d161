package policy

import (
	"cmp"
	"slices"

	"github.com/warrenmesh/warren/internal/wire"
)

// This file answers "which rules does this node fail only because of its
// posture, and why", for telling the node's user. The graph keeps, per
// node, the posture-gated rules whose sources select it but whose
// postures it fails (gnode.gatedRules, grule.gated), so a node's answer
// costs work proportional to those rules, and it records which nodes'
// answers may have changed (postureDirty) for its owner to collect.

// deniedByPosture reports whether r's sources select n but none of r's
// postures admits it. r has postures.
func (g *Graph) deniedByPosture(r *rule, n *gnode) bool {
	if !r.srcMatches(&n.subject) && !r.srcRouteMatches(&n.subject) {
		return false
	}
	for _, pi := range r.postures {
		if n.postureOK[pi] {
			return false
		}
	}
	return true
}

// countDst keeps gr.ndst in step with gr.dst after a node joined (in) or
// left its destinations. When the count crosses 0, 1 or 2, whether the
// rule's destinations exist for a node may change (Denials), so the
// nodes it may deny and for whom that changed are marked.
func (g *Graph) countDst(gr *grule, in bool) {
	before := gr.ndst
	if in {
		gr.ndst++
	} else {
		gr.ndst--
	}
	switch min(before, gr.ndst) {
	case 0: // the destinations appear or vanish for everyone
		g.postureDirty.or(gr.gated)
		g.postureDirty.or(gr.mfaGated)
	case 1: // ... or only for the node that is the one destination
		g.postureDirty.orAnd(gr.gated, gr.dst)
		g.postureDirty.orAnd(gr.mfaGated, gr.dst)
	}
}

// Denials lists the rules node id fails only because of its posture: its
// sources select the node, the rule applies now (time window open, MFA
// fresh enough), some node or route its destinations select exists (other
// than id itself; an autogroup:self destination counts for a user's
// device), and none of its postures holds. Each is one
// wire.PostureDenial per destination and posture, with the first failing
// condition of that posture in plain words, sorted by destination and
// posture. Its cost is proportional to those rules, never to the policy
// or the mesh.
func (g *Graph) Denials(id wire.NodeID) []wire.PostureDenial {
	slot, ok := g.slots[id]
	if !ok {
		return nil
	}
	n := g.nodes[slot]
	var out []wire.PostureDenial
	for _, ri := range n.gatedRules {
		gr := g.rules[ri]
		r := gr.r
		if !gr.active {
			continue
		}
		if r.mfa > 0 && (n.tagged || n.node.MFAAt.IsZero() || g.now.Sub(n.node.MFAAt) > r.mfa) {
			continue // fixing the posture would not be enough
		}
		others := gr.ndst > 1 || gr.ndst == 1 && !gr.dst.has(slot)
		for i := range r.dst {
			d := &r.dst[i]
			if d.sel.kind == selSelf {
				if n.tagged {
					continue
				}
			} else if !others {
				continue
			}
			for _, pi := range r.postures {
				po := g.p.postures[pi]
				_, why := po.check(n.attrs)
				out = append(out, wire.PostureDenial{Destination: d.text, Posture: po.name, Reason: why})
			}
		}
	}
	slices.SortFunc(out, func(a, b wire.PostureDenial) int {
		return cmp.Or(cmp.Compare(a.Destination, b.Destination), cmp.Compare(a.Posture, b.Posture))
	})
	return slices.Compact(out)
}

// PostureChanged returns the nodes whose Denials may have changed since
// the previous call, and forgets them. The list is complete but not
// always minimal: a node whose posture or record changed is always in it,
// as is every node after SetPolicy.
func (g *Graph) PostureChanged() []wire.NodeID {
	ids := g.ids(g.postureDirty)
	clear(g.postureDirty)
	return ids
}
