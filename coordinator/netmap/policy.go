package netmap

import (
	"net/netip"

	"github.com/warrenmesh/warren/internal/wire"
)

// Policy decides who sees whom and what each node accepts. The policy engine
// implements it; SameOwner is the interim policy until then.
type Policy interface {
	// Peers calls fn for every node that n may reach or that may reach n
	// (excluding n itself), until fn returns false. It must be symmetric: a
	// in Peers(b) if and only if b in Peers(a). The engine drops inactive
	// nodes itself.
	Peers(n *Node, idx *Index, fn func(*Node) bool)
	// Filter returns the packet filter n enforces on traffic arriving from
	// its peers. An empty filter denies everything.
	Filter(n *Node, idx *Index) []wire.FilterRule
}

// SameOwner is the interim policy: nodes of the same user see each other,
// tagged nodes see nodes sharing one of their tags, nothing else.
//
// Its filter accepts every port from the mesh ranges. That is exactly "allow
// from my peers and nobody else": a WireGuard peer's packets are only
// accepted from that peer's own addresses (cryptokey routing), and a node's
// WireGuard peers are its netmap peers. The policy engine replaces this with
// per-rule filters.
type SameOwner struct{}

var meshPrefixes = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("fd7a:115c:a1e0::/48"),
}

// Peers implements Policy.
func (SameOwner) Peers(n *Node, idx *Index, fn func(*Node) bool) {
	if !n.Tagged() {
		idx.OwnedBy(n.UserID, func(p *Node) bool {
			return p.ID() == n.ID() || fn(p)
		})
		return
	}
	seen := make(map[wire.NodeID]bool)
	for _, t := range n.Wire.Tags {
		stop := false
		idx.WithTag(t, func(p *Node) bool {
			if p.ID() == n.ID() || seen[p.ID()] {
				return true
			}
			seen[p.ID()] = true
			stop = !fn(p)
			return !stop
		})
		if stop {
			return
		}
	}
}

// Filter implements Policy.
func (SameOwner) Filter(n *Node, _ *Index) []wire.FilterRule {
	dst := make([]wire.PortRange, 0, len(n.Wire.Addresses))
	for _, a := range n.Wire.Addresses {
		dst = append(dst, wire.PortRange{Prefix: a, First: 0, Last: 65535})
	}
	return []wire.FilterRule{{SrcPrefixes: meshPrefixes, DstPorts: dst}}
}
