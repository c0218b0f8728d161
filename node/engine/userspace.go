package engine

import (
	"fmt"
	"net/netip"

	"github.com/warrenmesh/warren/node/netstack"
)

// openUserspace starts Warren's netstack (a gVisor TCP/IP stack in this
// process, needing no privileges) on the node's mesh addresses. The stack
// is WireGuard's tun.Device and dials and listens for local code.
func openUserspace(cfg Config) (netDevice, error) {
	addrs := make([]netip.Addr, 0, len(cfg.Addresses))
	for _, p := range cfg.Addresses {
		addrs = append(addrs, p.Addr())
	}
	s, err := netstack.New(netstack.Config{Addresses: addrs, MTU: cfg.MTU, Logger: cfg.Logger.With("part", "netstack")})
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	return s, nil
}
