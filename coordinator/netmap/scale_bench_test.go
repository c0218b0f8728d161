package netmap

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/warrenmesh/warren/internal/policy"
	"github.com/warrenmesh/warren/internal/wire"
)

// A realistic company mesh: users with ten devices each that reach their
// own devices (autogroup:self), and 20 tagged servers every member reaches.
// policyOrgB changes every node's filter (the devices' self ports, and the
// servers' ports) but nobody's peers.
const (
	policyOrgA = `{
	"tagOwners": {"tag:server": []},
	"acls": [
		{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]},
		{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:server:443"]},
	],
}`
	policyOrgB = `{
	"tagOwners": {"tag:server": []},
	"acls": [
		{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:22,443,8000-9000"]},
		{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:server:443,5432"]},
	],
}`
	orgServers = 20
	orgDevices = 10 // per user
)

// orgNode is node id of the org mesh: the first orgServers are servers,
// the rest devices of user (id-orgServers-1)/orgDevices, each with an IPv4
// and the IPv6 address paired with it, as the coordinator hands out.
func orgNode(id int) Node {
	var n Node
	if id <= orgServers {
		n = testNode(id, 0, "tag:server")
	} else {
		n = testNode(id, int64(1+(id-orgServers-1)/orgDevices))
	}
	v4 := n.Wire.Addresses[0].Addr().As4()
	v6 := netip.MustParseAddr("fd7a:115c:a1e0::").As16()
	copy(v6[12:], v4[:])
	n.Wire.Addresses = append(n.Wire.Addresses, netip.PrefixFrom(netip.AddrFrom16(v6), 128))
	return n
}

// orgMesh builds an engine with the org policy and n nodes, every one
// subscribed at version and synced (its full map taken).
func orgMesh(b *testing.B, n, version int) (*Engine, []*Stream) {
	b.Helper()
	e := newEngine(b, Config{MaxQueue: 1 << 20, Policy: mustPolicy(b, policyOrgA)})
	for i := 1; i <= n; i++ {
		e.Upsert(orgNode(i))
	}
	ctx := context.Background()
	streams := make([]*Stream, 0, n)
	for i := 1; i <= n; i++ {
		s, err := e.SubscribeVersion(wire.NodeID(i), version)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Next(ctx); err != nil {
			b.Fatal(err)
		}
		streams = append(streams, s)
	}
	return e, streams
}

// deliver takes and encodes every stream's queued response, as the control
// server does, and returns the bytes written and the streams reached.
func deliver(b *testing.B, streams []*Stream) (bytes, reached int) {
	b.Helper()
	ctx := context.Background()
	for _, s := range streams {
		if s.Pending() == 0 {
			continue
		}
		resp, err := s.Next(ctx)
		if err != nil {
			b.Fatal(err)
		}
		frame, err := wire.Encode(resp)
		if err != nil {
			b.Fatal(err)
		}
		bytes += len(frame)
		reached++
	}
	return bytes, reached
}

// BenchmarkOrgPolicyChange measures a policy change that alters every
// node's filter in the org mesh, delivered to every stream and encoded.
// proto=2 is the baseline of nodes that take only whole filters.
func BenchmarkOrgPolicyChange(b *testing.B) {
	for _, nodes := range []int{1000, 10000} {
		for _, version := range []int{wire.FilterDeltaVersion - 1, wire.FilterDeltaVersion} {
			b.Run(fmt.Sprintf("nodes=%d/proto=%d", nodes, version), func(b *testing.B) {
				e, streams := orgMesh(b, nodes, version)
				ps := []*policy.Policy{mustPolicy(b, policyOrgA), mustPolicy(b, policyOrgB)}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					e.SetPolicy(ps[(i+1)%2])
					bytes, reached := deliver(b, streams)
					if reached != nodes {
						b.Fatalf("the change reached %d of %d nodes", reached, nodes)
					}
					b.ReportMetric(float64(bytes)/float64(nodes), "B/node")
				}
			})
		}
	}
}

// BenchmarkOrgJoinBurst measures registration throughput on the
// coordinator side: a burst of 100 new devices (ten users' worth) joins
// the org mesh before any stream is served, then every affected stream
// takes one response that folds the whole burst. ns/op is per burst.
func BenchmarkOrgJoinBurst(b *testing.B) {
	const burst = 100
	for _, nodes := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			e, streams := orgMesh(b, nodes, wire.ProtocolVersion)
			id := nodes + 1
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				first := id
				for j := 0; j < burst; j++ {
					e.Upsert(orgNode(id))
					id++
				}
				bytes, reached := deliver(b, streams)
				if reached < orgServers {
					b.Fatalf("the burst reached %d streams, want at least the %d servers", reached, orgServers)
				}
				b.ReportMetric(float64(bytes)/float64(reached), "B/stream")
				b.StopTimer()
				for j := first; j < id; j++ {
					e.Remove(wire.NodeID(j), nil)
				}
				deliver(b, streams)
				b.StartTimer()
			}
		})
	}
}
