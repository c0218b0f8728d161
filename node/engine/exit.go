package engine

import (
	"net/netip"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/routes"
	"github.com/warrenmesh/warren/internal/wire"
)

// Assign is SubnetRoutes plus the exit node this node's user chose: when
// exit is a peer whose enabled routes make it an exit node (both
// 0.0.0.0/0 and ::/0), those two routes are assigned to it, so its
// WireGuard allowed IPs take every address no mesh address or subnet
// route claims more specifically (longest prefix wins). A zero exit, or
// one that is no exit node in peers, assigns no exit route: non-mesh
// traffic then has no peer to go to, rather than going around the
// chosen exit node.
func Assign(peers []wire.Node, exit key.NodePublic) map[netip.Prefix]key.NodePublic {
	out := SubnetRoutes(peers)
	if exit.IsZero() {
		return out
	}
	for _, p := range peers {
		if p.NodeKey == exit && routes.Exit(p.Routes) {
			out[routes.ExitV4], out[routes.ExitV6] = exit, exit
			break
		}
	}
	return out
}

// SetExitNode sets the peer this node sends its non-mesh traffic
// through (zero: none); it takes effect with the next SetNetmap.
func (e *Engine) SetExitNode(k key.NodePublic) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.exit = k
}
