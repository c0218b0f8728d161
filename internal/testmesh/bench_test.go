package testmesh

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/node/controlclient"
)

// BenchmarkDeltaPropagation measures, end to end over real websockets and
// Noise channels on loopback, how long one node's endpoint change takes to
// reach the netmaps of all other connected nodes.
func BenchmarkDeltaPropagation(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			m := New(b, Options{})
			u := m.User("ann@example.com")
			k := m.AuthKey(registry.AuthKeyRequest{UserID: u.ID, Reusable: true})
			nodes := make([]*Node, n)
			for i := range nodes {
				nodes[i] = m.AddNode(fmt.Sprintf("n%d", i), NodeOptions{AuthKey: k})
			}
			for _, node := range nodes {
				if err := node.WaitFor(wait, func(nm *controlclient.Netmap) bool { return len(nm.Peers) == n-1 }); err != nil {
					b.Fatal(err)
				}
			}
			mover, watchers := nodes[0], nodes[1:]
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ep := netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), uint16(1000+i%60000))
				mover.Client.SetEndpoints([]netip.AddrPort{ep}, 1)
				for _, w := range watchers {
					err := w.WaitFor(wait, func(nm *controlclient.Netmap) bool {
						p, ok := nm.PeerByName("n0")
						return ok && len(p.Endpoints) == 1 && p.Endpoints[0] == ep
					})
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
