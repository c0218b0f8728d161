package engine

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/netstack"
)

// userspaceDevice is wireguard-go's netstack: a gVisor TCP/IP stack in
// this process, needing no privileges.
type userspaceDevice struct {
	tun.Device
	net *netstack.Net
}

func openUserspace(cfg Config) (netDevice, error) {
	addrs := make([]netip.Addr, 0, len(cfg.Addresses))
	for _, p := range cfg.Addresses {
		addrs = append(addrs, p.Addr())
	}
	tdev, tnet, err := netstack.CreateNetTUN(addrs, nil, cfg.MTU)
	if err != nil {
		return nil, fmt.Errorf("engine: create netstack: %w", err)
	}
	return &userspaceDevice{Device: tdev, net: tnet}, nil
}

func (d *userspaceDevice) DialContext(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
		return d.net.DialContextTCPAddrPort(ctx, addr)
	case "udp", "udp4", "udp6":
		return d.net.DialUDPAddrPort(netip.AddrPort{}, addr)
	}
	return nil, fmt.Errorf("engine: unsupported network %q", network)
}

func (d *userspaceDevice) ListenTCP(port uint16) (net.Listener, error) {
	return d.net.ListenTCPAddrPort(netip.AddrPortFrom(netip.Addr{}, port))
}
