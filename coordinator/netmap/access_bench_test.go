package netmap

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/policy"
	"github.com/warrenmesh/warren/internal/wire"
)

// The grants benchmark's mesh: 10,000 nodes, of which 1,000 are services
// (100 tags of 10 nodes each) and 9,000 laptops of 4,500 users; 1,000
// laptops hold a grant to one service tag each.
const (
	grantMeshNodes    = 10000
	grantServiceTags  = 100
	grantServiceNodes = 1000 // ids 1..1000, tag:svc(id%100)
	grantCount        = 1000 // laptops 1001..2000, to tag:svc(i%100):5432
	grantExpiring     = 100  // the first 100 of them expire at once
)

// grantMeshPolicy is the benchmark's policy: users reach their own
// devices; with window, group:win (the users of the 100 laptops whose
// grants expire) reaches every service in a daily time window closing at
// 17:00 UTC, the baseline.
func grantMeshPolicy(window bool) string {
	var tags, win []string
	for k := 0; k < grantServiceTags; k++ {
		tags = append(tags, fmt.Sprintf(`"tag:svc%d": []`, k))
	}
	for i := 0; i < grantExpiring; i++ {
		win = append(win, fmt.Sprintf(`"u%d@example.com"`, grantLaptopUser(grantServiceNodes+1+i)))
	}
	acls := `{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]}`
	if window {
		var dst []string
		for k := 0; k < grantServiceTags; k++ {
			dst = append(dst, fmt.Sprintf(`"tag:svc%d:5432"`, k))
		}
		acls += `, {"action": "accept", "src": ["group:win"], "dst": [` + strings.Join(dst, ", ") +
			`], "when": {"hours": "09:00-17:00", "tz": "UTC"}}`
	}
	return `{"groups": {"group:win": [` + strings.Join(win, ", ") + `]}, "tagOwners": {` + strings.Join(tags, ", ") +
		`}, "acls": [` + acls + `]}`
}

// grantLaptopUser is the user of laptop id: two laptops per user.
func grantLaptopUser(id int) int64 { return int64(10000 + (id-grantServiceNodes-1)/2) }

// grantMesh builds the benchmark's engine on clock with every node
// subscribed and synced.
func grantMesh(b *testing.B, window bool, clock func() time.Time) (*Engine, []*Stream) {
	b.Helper()
	e := New(Config{Policy: mustPolicy(b, grantMeshPolicy(window)), Now: clock, MaxQueue: 1 << 20})
	for id := 1; id <= grantMeshNodes; id++ {
		if id <= grantServiceNodes {
			e.Upsert(testNode(id, 1, fmt.Sprintf("tag:svc%d", id%grantServiceTags)))
		} else {
			e.Upsert(testNode(id, grantLaptopUser(id)))
		}
	}
	streams := make([]*Stream, 0, grantMeshNodes)
	for id := 1; id <= grantMeshNodes; id++ {
		s, err := e.Subscribe(wire.NodeID(id))
		if err != nil {
			b.Fatal(err)
		}
		streams = append(streams, s)
	}
	synced(streams)
	return e, streams
}

// synced forgets everything queued, as if every stream had taken it.
func synced(streams []*Stream) {
	for _, s := range streams {
		s.mu.Lock()
		s.pending, s.needFull = s.pending[:0], false
		s.mu.Unlock()
	}
}

// reached counts the streams with something queued.
func reached(streams []*Stream) int {
	n := 0
	for _, s := range streams {
		if s.Pending() > 0 {
			n++
		}
	}
	return n
}

// deliverAll builds and encodes the response of every stream with
// something queued (what the control server sends each node).
func deliverAll(b *testing.B, streams []*Stream) {
	ctx := context.Background()
	for _, s := range streams {
		if s.Pending() == 0 {
			continue
		}
		resp, err := s.Next(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := wire.Encode(resp); err != nil {
			b.Fatal(err)
		}
	}
}

type benchClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *benchClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *benchClock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

// BenchmarkGrantExpiry: 1,000 active grants in a 10,000-node mesh, 100
// of which expire at once; one op is the engine's wake-up at their Until
// (due) until every affected stream (the 100 granted laptops and the
// 1,000 service nodes their grants reached) has its new map queued, and,
// with deliver, built and encoded. The baseline is a time window closing
// for the same nodes (group:win of the same 100 laptops' users to every
// service) in an engine of the same mesh without grants.
func BenchmarkGrantExpiry(b *testing.B) {
	base := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	far := base.AddDate(10, 0, 0)
	for _, deliver := range []bool{false, true} {
		suffix := ""
		if deliver {
			suffix = "+deliver"
		}
		b.Run("grants"+suffix, func(b *testing.B) {
			clock := &benchClock{now: base}
			e, streams := grantMesh(b, false, clock.Now)
			for i := 0; i < grantCount; i++ {
				if err := e.SetGrant(grantFor(i, far)); err != nil {
					b.Fatal(err)
				}
			}
			synced(streams)
			b.ReportAllocs()
			b.ResetTimer()
			for it := 0; it < b.N; it++ {
				b.StopTimer()
				day := base.AddDate(0, 0, it)
				clock.Set(day)
				for i := 0; i < grantExpiring; i++ {
					if err := e.SetGrant(grantFor(i, day.Add(time.Hour))); err != nil {
						b.Fatal(err)
					}
				}
				synced(streams)
				clock.Set(day.Add(time.Hour))
				b.StartTimer()
				e.due()
				if deliver {
					deliverAll(b, streams)
				}
				b.StopTimer()
				if !deliver {
					if n := reached(streams); n != grantExpiring+grantServiceNodes {
						b.Fatalf("expiry reached %d streams, want %d", n, grantExpiring+grantServiceNodes)
					}
				}
				if n := len(e.Grants()); n != grantCount-grantExpiring {
					b.Fatalf("%d grants in force after the expiry, want %d", n, grantCount-grantExpiring)
				}
				b.StartTimer()
			}
		})
		b.Run("baseline=window"+suffix, func(b *testing.B) {
			clock := &benchClock{now: base}
			e, streams := grantMesh(b, true, clock.Now)
			b.ReportAllocs()
			b.ResetTimer()
			for it := 0; it < b.N; it++ {
				b.StopTimer()
				day := base.AddDate(0, 0, it)
				clock.Set(day.Add(9 * time.Hour)) // the window opens
				e.due()
				synced(streams)
				clock.Set(day.Add(17 * time.Hour)) // and closes
				b.StartTimer()
				e.due()
				if deliver {
					deliverAll(b, streams)
				}
				b.StopTimer()
				if !deliver {
					if n := reached(streams); n != grantExpiring+grantServiceNodes {
						b.Fatalf("window reached %d streams, want %d", n, grantExpiring+grantServiceNodes)
					}
				}
				b.StartTimer()
			}
		})
	}
}

// grantFor is grant i: laptop 1001+i to tag:svc(i%100):5432.
func grantFor(i int, until time.Time) policy.Grant {
	return policy.Grant{ID: fmt.Sprintf("ar-%d", i), Node: wire.NodeID(grantServiceNodes + 1 + i),
		Dst: fmt.Sprintf("tag:svc%d:5432", i%grantServiceTags), Rule: "access[0]", Until: until}
}
