package engine

import (
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/routes"
	"github.com/warrenmesh/warren/internal/wire"
)

// SubnetRoutes decides which peer carries each subnet route the netmap
// offers: WireGuard can send a prefix to one peer only. Among the peers
// serving a prefix it picks an online one before an offline one, then
// the lowest node ID, so every node with the same netmap picks the same
// router. Exit-node routes (0.0.0.0/0, ::/0) are never assigned here: a
// node sends its internet traffic to an exit node only when its user
// chooses one. (The engine also demotes routers that stop answering on
// this node: see failover.go.)
func SubnetRoutes(peers []wire.Node) map[netip.Prefix]key.NodePublic {
	return assignRoutes(peers, nil)
}

// RouteFor returns the peer that carries a (a non-mesh address) under
// assignment (from SubnetRoutes): the one with the longest matching
// prefix.
func RouteFor(assignment map[netip.Prefix]key.NodePublic, a netip.Addr) (key.NodePublic, bool) {
	a = a.Unmap()
	var best netip.Prefix
	var k key.NodePublic
	for r, pk := range assignment {
		if r.Contains(a) && (!best.IsValid() || r.Bits() > best.Bits()) {
			best, k = r, pk
		}
	}
	return k, best.IsValid()
}

// allowedIPs is what WireGuard may send to and accept from peer p: its
// mesh addresses, and the subnet routes assigned to it.
func allowedIPs(p wire.Node, assignment map[netip.Prefix]key.NodePublic) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(p.Addresses)+len(p.Routes))
	for _, a := range p.Addresses {
		out = append(out, netip.PrefixFrom(a.Addr(), a.Addr().BitLen()))
	}
	for _, r := range p.Routes {
		if assignment[r] == p.NodeKey && !p.NodeKey.IsZero() {
			out = append(out, r)
		}
	}
	routes.Sort(out)
	return slices.Compact(out)
}

// servedRoutes is the set of routes this node serves (its own netmap
// entry's), read by the userspace router on every forwarded flow.
type servedRoutes struct {
	p atomic.Pointer[[]netip.Prefix]
}

func (s *servedRoutes) set(rs []netip.Prefix) {
	c := slices.Clone(rs)
	s.p.Store(&c)
}

// contains reports whether a is inside a route this node serves.
func (s *servedRoutes) contains(a netip.Addr) bool {
	rs := s.p.Load()
	if rs == nil {
		return false
	}
	return slices.ContainsFunc(*rs, func(r netip.Prefix) bool { return r.Contains(a) })
}
