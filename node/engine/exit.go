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
	return withExit(SubnetRoutes(peers), peers, exit)
}

// withExit adds the exit routes for exit (see Assign) to a subnet route
// assignment and returns it.
func withExit(out map[netip.Prefix]key.NodePublic, peers []wire.Node, exit key.NodePublic) map[netip.Prefix]key.NodePublic {
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
// through (zero: none); its allowed IPs change with the next SetNetmap.
// In kernel TUN mode, while chosen (the user chose an exit node, even
// one that is not, or no longer, an approved exit node: then non-mesh
// traffic goes nowhere rather than around it), it also installs the
// policy routing that sends all non-mesh traffic into the TUN device
// (exitroute.go), allowLAN keeping the host's directly connected
// networks on the main table; otherwise it removes it.
func (e *Engine) SetExitNode(k key.NodePublic, chosen, allowLAN bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.exit = k
	dev := e.TUNName()
	want := exitState{on: chosen, allowLAN: allowLAN && chosen}
	if dev == "" || want == e.exitRouted {
		return nil
	}
	var addrs []netip.Addr
	for _, p := range e.addrs {
		addrs = append(addrs, p.Addr().Unmap())
	}
	if err := exitRouting(dev, addrs, want.on, want.allowLAN); err != nil {
		e.exitRouted = exitState{}
		_ = exitRouting(dev, addrs, false, false)
		return err
	}
	e.exitRouted = want
	return nil
}

// exitState is the exit-node routing installed in kernel TUN mode.
type exitState struct{ on, allowLAN bool }

// closeExitRouting removes the exit-node routing, if installed, when the
// engine closes.
func (e *Engine) closeExitRouting() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.exitRouted.on {
		return
	}
	if err := exitRouting(e.TUNName(), nil, false, false); err != nil {
		e.log.Error("exit node: restore routing", "err", err)
	}
	e.exitRouted = exitState{}
}
