package netmap

import (
	"net/netip"
	"slices"

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
