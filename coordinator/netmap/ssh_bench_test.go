package netmap

import (
	"fmt"
	"testing"

	"github.com/warrenmesh/warren/internal/wire"
)

// BenchmarkSSHPeerJoins measures a member's laptop joining a mesh where
// one node in ten is a tag:prod server every member reaches on port 22,
// and its leaving. ssh: the servers are SSH destinations of a rule whose
// Sources are every member's laptop, so each server's SSH policy changes
// with the join; baseline-no-ssh is the same mesh and acls without the ssh
// section. The removal is not timed.
func BenchmarkSSHPeerJoins(b *testing.B) {
	const acls = `"tagOwners": {"tag:prod": []},
		"acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:prod:22", "autogroup:self:*"]}]`
	for _, nodes := range []int{1000, 10000} {
		for _, tc := range []struct{ name, policy string }{
			{"baseline-no-ssh", `{` + acls + `}`},
			{"ssh", `{` + acls + `, "ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:prod"], "users": ["autogroup:nonroot"]}]}`},
		} {
			b.Run(fmt.Sprintf("nodes=%d/%s", nodes, tc.name), func(b *testing.B) {
				e := newEngine(b, Config{MaxQueue: 1 << 20, Policy: mustPolicy(b, tc.policy)})
				var streams []*Stream
				for i := 1; i <= nodes; i++ {
					n := testNode(i, int64(i))
					if i%10 == 0 {
						n = testNode(i, 0, "tag:prod")
					}
					e.Upsert(n)
					s, err := e.Subscribe(wire.NodeID(i))
					if err != nil {
						b.Fatal(err)
					}
					streams = append(streams, s)
				}
				// Build every full map once (the SSH policies with them).
				e.mu.Lock()
				for _, s := range streams {
					s.mu.Lock()
					s.needFull = false
					s.mu.Unlock()
					e.fullMap(s.id, e.now())
				}
				e.mu.Unlock()
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
