package netmap

import (
	"net/netip"
	"slices"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// AddrOwner is the node that holds a mesh address, as flow logs name it.
type AddrOwner struct {
	ID   wire.NodeID
	User string // the owner's login; empty for tagged nodes
	Tags []string
}

// Owners returns the nodes holding each of addrs that some node holds
// (its own mesh addresses, not routes), in one pass over the nodes.
func (e *Engine) Owners(addrs []netip.Addr) map[netip.Addr]AddrOwner {
	want := make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		want[a.Unmap()] = true
	}
	out := make(map[netip.Addr]AddrOwner, len(want))
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, n := range e.nodes {
		for _, p := range n.Wire.Addresses {
			if a := p.Addr(); want[a] {
				out[a] = AddrOwner{ID: n.Wire.ID, User: n.Wire.User, Tags: slices.Clone(n.Wire.Tags)}
			}
		}
	}
	return out
}

// WhyDenied refines the reason of a packet from node src to dst (an
// address of node dstNode or behind its routes) that dstNode's filter
// denied at time at: the policy.Deny* reason and the id of the rule that
// would have admitted it but for its conditions, or two empty strings
// (policy.Graph.WhyDenied). Its cost follows the rules that may select
// src, not the mesh.
func (e *Engine) WhyDenied(src, dstNode wire.NodeID, dst netip.Addr, proto uint8, port uint16, at time.Time) (reason, rule string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.graph.WhyDenied(src, dstNode, dst, proto, port, at)
}

// RuleWindow describes the time window of the policy's rule ruleID
// ("acls[3]"), or returns "" (policy.Policy.RuleWindow).
func (e *Engine) RuleWindow(ruleID string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.graph.Policy().RuleWindow(ruleID)
}
