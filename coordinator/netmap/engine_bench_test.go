package netmap

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/warrenmesh/warren/internal/policy"
	"github.com/warrenmesh/warren/internal/wire"
)

// benchMesh builds an engine with n nodes spread over users (users == 1:
// everyone sees everyone, the worst case) and a subscribed, synced stream
// for every node.
func benchMesh(b *testing.B, n, users int) (*Engine, []*Stream) {
	return benchMeshVersion(b, n, users, wire.ProtocolVersion)
}

// benchMeshVersion is benchMesh with streams of nodes that speak the given
// protocol version.
func benchMeshVersion(b *testing.B, n, users, version int) (*Engine, []*Stream) {
	b.Helper()
	e := newEngine(b, Config{MaxQueue: 1 << 20})
	for i := 1; i <= n; i++ {
		e.Upsert(testNode(i, int64(i%users)))
	}
	streams := make([]*Stream, 0, n)
	for i := 1; i <= n; i++ {
		s, err := e.SubscribeVersion(wire.NodeID(i), version)
		if err != nil {
			b.Fatal(err)
		}
		streams = append(streams, s)
	}
	// Pretend the full maps went out already (the filter is what deltas
	// patch).
	e.mu.Lock()
	for _, s := range streams {
		s.mu.Lock()
		s.needFull = false
		s.filter = e.graph.CompactFilter(s.id)
		s.mu.Unlock()
	}
	e.mu.Unlock()
	return e, streams
}

func reset(streams []*Stream) {
	for _, s := range streams {
		s.mu.Lock()
		s.pending = s.pending[:0]
		s.mu.Unlock()
	}
}

// BenchmarkFanout measures one node's change (new endpoints) reaching the
// queues of every stream that must hear of it.
func BenchmarkFanout(b *testing.B) {
	for _, tc := range []struct{ nodes, users int }{{1000, 1}, {10000, 1}, {10000, 100}} {
		b.Run(fmt.Sprintf("nodes=%d/users=%d", tc.nodes, tc.users), func(b *testing.B) {
			e, streams := benchMesh(b, tc.nodes, tc.users)
			ep := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:41641")}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := e.SetEndpoints(1, ep, i); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				reached := 0
				for _, s := range streams {
					reached += s.Pending()
				}
				if want := tc.nodes/tc.users - 1; reached != want {
					b.Fatalf("change reached %d streams, want %d", reached, want)
				}
				reset(streams)
				b.StartTimer()
			}
		})
	}
}

// BenchmarkFanoutDeliver measures a node joining the mesh, end to end on
// the coordinator side: every affected stream is woken, merges its queue
// into a response and encodes it as a wire frame (what the control server
// writes to each node's channel). proto=2 is the baseline: nodes that take
// only whole filters; proto=3 nodes take rule deltas.
func BenchmarkFanoutDeliver(b *testing.B) {
	for _, tc := range []struct{ nodes, users, version int }{
		{1000, 1, wire.FilterDeltaVersion - 1}, {1000, 1, wire.FilterDeltaVersion},
		{10000, 1, wire.FilterDeltaVersion - 1}, {10000, 1, wire.FilterDeltaVersion},
		{10000, 100, wire.FilterDeltaVersion - 1}, {10000, 100, wire.FilterDeltaVersion},
	} {
		b.Run(fmt.Sprintf("nodes=%d/users=%d/proto=%d", tc.nodes, tc.users, tc.version), func(b *testing.B) {
			e, streams := benchMeshVersion(b, tc.nodes, tc.users, tc.version)
			id := tc.nodes + 1
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				node := testNode(id, int64(id%tc.users))
				e.Upsert(node)
				bytes, _ := deliver(b, streams)
				if bytes == 0 {
					b.Fatal("nothing delivered")
				}
				b.StopTimer()
				e.Remove(wire.NodeID(id), nil)
				reset(streams)
				id++
				b.StartTimer()
			}
		})
	}
}

// BenchmarkRouterPeerJoins measures a laptop joining a mesh where every
// laptop may use one subnet router: the router's filter gains a source, so
// the engine re-checks which routes each of the router's peers may use
// (routes.go). The baseline is the same mesh where the laptops reach the
// router's own address and it carries no routes.
func BenchmarkRouterPeerJoins(b *testing.B) {
	const viaRoute = `{
		"tagOwners": {"tag:router": []},
		"acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["10.20.0.0/24:*"]}],
	}`
	const viaAddress = `{
		"tagOwners": {"tag:router": []},
		"acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:router:*"]}],
	}`
	for _, nodes := range []int{1000, 10000} {
		for _, tc := range []struct {
			name, policy string
			routes       []netip.Prefix
		}{
			{"baseline-no-routes", viaAddress, nil},
			{"routes", viaRoute, prefixes("10.20.0.0/24", "10.30.0.0/24")},
		} {
			b.Run(fmt.Sprintf("nodes=%d/%s", nodes, tc.name), func(b *testing.B) {
				e := newEngine(b, Config{MaxQueue: 1 << 20, Policy: mustPolicy(b, tc.policy)})
				router := testNode(1, 0, "tag:router")
				router.Wire.Routes = tc.routes
				e.Upsert(router)
				var streams []*Stream
				for i := 1; i <= nodes; i++ {
					if i > 1 {
						e.Upsert(testNode(i, int64(i)))
					}
					s, err := e.Subscribe(wire.NodeID(i))
					if err != nil {
						b.Fatal(err)
					}
					s.mu.Lock()
					s.needFull = false // pretend the full map went out already
					s.mu.Unlock()
					streams = append(streams, s)
				}
				id := nodes + 1
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					e.Upsert(testNode(id, int64(id)))
					b.StopTimer()
					e.Remove(wire.NodeID(id), nil)
					reset(streams)
					id++
					b.StartTimer()
				}
			})
		}
	}
}

// BenchmarkPolicyChangeDeliver measures a policy change that touches every
// node's filter (a new rule among one user's devices) but no node's peers,
// delivered to every stream and encoded, as in BenchmarkFanoutDeliver.
// proto=2 is the baseline of nodes that take only whole filters.
func BenchmarkPolicyChangeDeliver(b *testing.B) {
	policies := []string{testPolicy, `{
	"tagOwners": {"tag:db": [], "tag:web": []},
	"acls": [
		{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]},
		{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:22"], "proto": "tcp"},
		{"action": "accept", "src": ["tag:db"], "dst": ["tag:db:*"]},
	],
}`}
	for _, tc := range []struct{ nodes, version int }{
		{1000, wire.FilterDeltaVersion - 1}, {1000, wire.FilterDeltaVersion},
		{10000, wire.FilterDeltaVersion - 1}, {10000, wire.FilterDeltaVersion},
	} {
		b.Run(fmt.Sprintf("nodes=%d/proto=%d", tc.nodes, tc.version), func(b *testing.B) {
			e, streams := benchMeshVersion(b, tc.nodes, 1, tc.version)
			ps := []*policy.Policy{mustPolicy(b, policies[0]), mustPolicy(b, policies[1])}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				e.SetPolicy(ps[(i+1)%2])
				bytes, _ := deliver(b, streams)
				if bytes == 0 {
					b.Fatal("nothing delivered")
				}
				b.ReportMetric(float64(bytes)/float64(len(streams)), "B/node")
			}
		})
	}
}
