package engine

import (
	"fmt"
	"net/netip"

	"github.com/warrenmesh/warren/node/netstack"
)

// openUserspace starts Warren's netstack (a gVisor TCP/IP stack in this
// process, needing no privileges) on the node's mesh addresses. The stack
// is WireGuard's tun.Device and dials and listens for local code; on a
// router it also forwards what peers send inside served's routes.
func openUserspace(cfg Config, served *servedRoutes) (netDevice, error) {
	addrs := make([]netip.Addr, 0, len(cfg.Addresses))
	for _, p := range cfg.Addresses {
		addrs = append(addrs, p.Addr())
	}
	ncfg := netstack.Config{Addresses: addrs, MTU: cfg.MTU, Logger: cfg.Logger.With("part", "netstack")}
	if cfg.Router {
		ncfg.Forward = &netstack.Forwarding{Allowed: served.contains}
	}
	s, err := netstack.New(ncfg)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	return s, nil
}
