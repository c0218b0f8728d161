package netmap

import (
	"encoding/json"
	"maps"
	"slices"
	"time"

	"github.com/warrenmesh/warren/internal/policy"
	"github.com/warrenmesh/warren/internal/wire"
)

// selfRecord is n's record as n itself receives it: the peers' record
// plus its attributes and capabilities from the policy's nodeAttrs
// (CapMap), which only an active node receives and peers never see.
// Callers hold e.mu.
func (e *Engine) selfRecord(n *Node, now time.Time) wire.Node {
	self := cloneWire(n.Wire)
	if n.Active(now) {
		pn := n.policyNode()
		self.CapMap = e.graph.Policy().NodeCapMap(&pn)
	}
	return self
}

// capMapsChanged lists the nodes whose nodeAttrs differ between policies
// old and nw. Callers hold e.mu.
func (e *Engine) capMapsChanged(old, nw *policy.Policy, now time.Time) []wire.NodeID {
	if len(old.NodeAttrs()) == 0 && len(nw.NodeAttrs()) == 0 {
		return nil
	}
	var out []wire.NodeID
	for id, n := range e.nodes {
		if !n.Active(now) {
			continue
		}
		pn := n.policyNode()
		if !sameCapMap(old.NodeCapMap(&pn), nw.NodeCapMap(&pn)) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

func sameCapMap(a, b map[string][]json.RawMessage) bool {
	return maps.EqualFunc(a, b, func(x, y []json.RawMessage) bool {
		return slices.EqualFunc(x, y, func(u, v json.RawMessage) bool { return string(u) == string(v) })
	})
}

// postureStatus is n's posture as n itself is shown it: the attributes
// held for it (never nil, so a delta can say "none now").
func postureStatus(n *Node) *wire.PostureStatus {
	return &wire.PostureStatus{Attrs: slices.Clone(n.PostureAttrs)}
}
