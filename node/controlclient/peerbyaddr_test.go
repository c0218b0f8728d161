package controlclient

import (
	"net/netip"
	"testing"

	"github.com/warrenmesh/warren/internal/wire"
)

func TestPeerByAddr(t *testing.T) {
	nm := &Netmap{Peers: []wire.Node{
		{ID: 2, Name: "a", Addresses: []netip.Prefix{netip.MustParsePrefix("100.64.0.2/32"), netip.MustParsePrefix("fd7a:115c:a1e0::2/128")}},
		{ID: 3, Name: "b", Addresses: []netip.Prefix{netip.MustParsePrefix("100.64.0.3/32")}},
	}}
	for addr, want := range map[string]wire.NodeID{"100.64.0.3": 3, "::ffff:100.64.0.2": 2, "fd7a:115c:a1e0::2": 2, "100.64.0.4": 0} {
		p, ok := nm.PeerByAddr(netip.MustParseAddr(addr))
		if ok != (want != 0) || p.ID != want {
			t.Errorf("PeerByAddr(%s) = %d, %v; want %d", addr, p.ID, ok, want)
		}
	}
}
