package netmap

import (
	"reflect"
	"slices"

	"github.com/warrenmesh/warren/internal/policy"
	"github.com/warrenmesh/warren/internal/wire"
)

// PolicyChange is what a candidate policy would change for one node.
type PolicyChange struct {
	Node         string // the node's name
	PeersAdded   []string
	PeersRemoved []string
	// FilterBefore and FilterAfter count the node's inbound filter rules
	// under the policy in force and under the candidate; FilterChanged
	// says whether the filter differs at all.
	FilterBefore, FilterAfter int
	FilterChanged             bool
}

// PreviewPolicy reports, for the nodes held now, which would see other
// peers or another filter if p replaced the policy in force, sorted by
// name. It changes nothing: both policies are compiled into graphs of
// their own, outside the engine's lock.
func (e *Engine) PreviewPolicy(p *policy.Policy) []PolicyChange {
	now := e.now()
	e.mu.Lock()
	cur := e.graph.Policy()
	grants := e.graph.Grants()
	nodes := make([]policy.Node, 0, len(e.nodes))
	names := make(map[wire.NodeID]string, len(e.nodes))
	for _, n := range e.nodes {
		if n.Active(now) {
			nodes = append(nodes, n.policyNode())
			names[n.ID()] = n.Wire.Name
		}
	}
	e.mu.Unlock()

	before, after := policy.NewGraph(cur, now, nodes...), policy.NewGraph(cur, now, nodes...)
	for _, g := range grants {
		_, _ = before.SetGrant(g)
		_, _ = after.SetGrant(g)
	}
	var out []PolicyChange
	for _, id := range after.SetPolicy(p) {
		fb, fa := before.Filter(id), after.Filter(id)
		pb, pa := peerNames(before, id, names), peerNames(after, id, names)
		c := PolicyChange{Node: names[id], FilterBefore: len(fb), FilterAfter: len(fa),
			FilterChanged: !reflect.DeepEqual(fb, fa),
			PeersAdded:    minus(pa, pb), PeersRemoved: minus(pb, pa)}
		if c.FilterChanged || c.PeersAdded != nil || c.PeersRemoved != nil {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b PolicyChange) int {
		if a.Node < b.Node {
			return -1
		}
		if a.Node > b.Node {
			return 1
		}
		return 0
	})
	return out
}

// peerNames lists the names of id's peers in g, sorted.
func peerNames(g *policy.Graph, id wire.NodeID, names map[wire.NodeID]string) []string {
	var out []string
	g.Peers(id, func(p wire.NodeID) bool {
		out = append(out, names[p])
		return true
	})
	slices.Sort(out)
	return out
}

// minus returns the elements of sorted a not in sorted b.
func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if _, found := slices.BinarySearch(b, x); !found {
			out = append(out, x)
		}
	}
	return out
}
