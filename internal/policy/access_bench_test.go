package policy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// BenchmarkGraphGrantExpiry measures, at the graph, 100 of 1,000 grants
// expiring at once in a 10,000-node mesh (1,000 service nodes under 100
// tags, 9,000 laptops): Advance to their Until, then the new filter and
// peers of every affected node. The baseline closes a time window for the
// same nodes (the 100 laptops' users to every service tag), and
// recomputing the same nodes' filters and peers with nothing expiring.
func BenchmarkGraphGrantExpiry(b *testing.B) {
	const (
		services, tags, nodes, grants, expiring = 1000, 100, 10000, 1000, 100
	)
	laptopUser := func(id int) string { return fmt.Sprintf("u%d@example.com", (id-services-1)/2) }
	policyText := func(window bool) string {
		var owners, win, dst []string
		for k := 0; k < tags; k++ {
			owners = append(owners, fmt.Sprintf(`"tag:svc%d": []`, k))
			dst = append(dst, fmt.Sprintf(`"tag:svc%d:5432"`, k))
		}
		for i := 0; i < expiring; i++ {
			win = append(win, `"`+laptopUser(services+1+i)+`"`)
		}
		acls := `{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]}`
		if window {
			acls += `, {"action": "accept", "src": ["group:win"], "dst": [` + strings.Join(dst, ", ") +
				`], "when": {"hours": "09:00-17:00", "tz": "UTC"}}`
		}
		return `{"groups": {"group:win": [` + strings.Join(win, ", ") + `]}, "tagOwners": {` +
			strings.Join(owners, ", ") + `}, "acls": [` + acls + `]}`
	}
	mesh := make([]Node, 0, nodes)
	for id := 1; id <= nodes; id++ {
		if id <= services {
			mesh = append(mesh, tagNode(id, fmt.Sprintf("tag:svc%d", id%tags)))
		} else {
			mesh = append(mesh, userNode(id, laptopUser(id)))
		}
	}
	grant := func(i int, until time.Time) Grant {
		return Grant{ID: fmt.Sprintf("ar-%d", i), Node: wire.NodeID(services + 1 + i),
			Dst: fmt.Sprintf("tag:svc%d:5432", i%tags), Rule: "access[0]", Until: until}
	}
	recompute := func(g *Graph, aff []wire.NodeID) int {
		n := 0
		for _, id := range aff {
			n += len(g.Filter(id))
			g.Peers(id, func(wire.NodeID) bool { n++; return true })
		}
		return n
	}
	base := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	b.Run("grants", func(b *testing.B) {
		g := NewGraph(mustParse(b, policyText(false)), base, mesh...)
		for i := 0; i < grants; i++ {
			if _, err := g.SetGrant(grant(i, base.AddDate(10, 0, 0))); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for it := 0; it < b.N; it++ {
			b.StopTimer()
			day := base.AddDate(0, 0, it)
			g.Advance(day)
			for i := 0; i < expiring; i++ {
				if _, err := g.SetGrant(grant(i, day.Add(time.Hour))); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
			aff := g.Advance(day.Add(time.Hour))
			recompute(g, aff)
			b.StopTimer()
			if len(aff) != expiring+services {
				b.Fatalf("expiry affected %d nodes, want %d", len(aff), expiring+services)
			}
			b.StartTimer()
		}
	})
	// The same filters and peers computed with nothing expiring: what the
	// affected nodes' new maps cost by themselves (900 grants remain).
	b.Run("baseline=recompute", func(b *testing.B) {
		g := NewGraph(mustParse(b, policyText(false)), base, mesh...)
		for i := expiring; i < grants; i++ {
			if _, err := g.SetGrant(grant(i, base.AddDate(10, 0, 0))); err != nil {
				b.Fatal(err)
			}
		}
		var aff []wire.NodeID
		for id := 1; id <= services+expiring; id++ {
			aff = append(aff, wire.NodeID(id))
		}
		b.ReportAllocs()
		b.ResetTimer()
		for it := 0; it < b.N; it++ {
			recompute(g, aff)
		}
	})
	b.Run("baseline=window", func(b *testing.B) {
		g := NewGraph(mustParse(b, policyText(true)), base, mesh...)
		b.ReportAllocs()
		b.ResetTimer()
		for it := 0; it < b.N; it++ {
			b.StopTimer()
			day := base.AddDate(0, 0, it)
			g.Advance(day.Add(9 * time.Hour))
			b.StartTimer()
			aff := g.Advance(day.Add(17 * time.Hour))
			recompute(g, aff)
			b.StopTimer()
			if len(aff) != expiring+services {
				b.Fatalf("window affected %d nodes, want %d", len(aff), expiring+services)
			}
			b.StartTimer()
		}
	})
}
