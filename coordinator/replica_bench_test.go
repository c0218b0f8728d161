package coordinator_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/tstest/pgtest"
	"github.com/warrenmesh/warren/node/controlclient"
)

// BenchmarkReplicaChange times one endpoint update from a node until
// another node sees it: connected to the same coordinator (same-replica,
// the baseline) and to another replica on the same database
// (cross-replica: the change goes through the feed), on SQLite (polled
// every 50 ms here) and PostgreSQL (NOTIFY).
func BenchmarkReplicaChange(b *testing.B) {
	for _, db := range []string{"sqlite", "postgres"} {
		b.Run(db, func(b *testing.B) {
			dbURL := ""
			if db == "postgres" {
				dbURL = pgtest.NewDatabase(b)
			}
			dir := b.TempDir()
			a, urlA, _ := replicaAt(b, dir, dbURL)
			r, urlB, _ := replicaAt(b, dir, dbURL)
			ctx := context.Background()
			u, err := a.Registry().CreateUser(ctx, admin, store.User{Name: "ann@example.com"})
			if err != nil {
				b.Fatal(err)
			}
			_, authKey, err := a.Registry().CreateAuthKey(ctx, admin, registry.AuthKeyRequest{UserID: u.ID, Reusable: true, TTL: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			src := joinAt(b, urlA, a.PublicKey(), authKey, "src")
			same := joinAt(b, urlA, a.PublicKey(), authKey, "same")
			other := joinAt(b, urlB, r.PublicKey(), authKey, "other")
			for _, c := range []struct {
				name string
				dst  *meshNode
			}{{"same-replica", same}, {"cross-replica", other}} {
				b.Run(c.name, func(b *testing.B) {
					for i := range b.N {
						ep := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(1000+i%60000))
						if i%60000 == 0 {
							ep = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), uint16(1000+i/60000))
						}
						src.client.SetEndpoints([]netip.AddrPort{ep}, 0)
						c.dst.until(b, fmt.Sprintf("seeing endpoint %v", ep), func(nm *controlclient.Netmap) bool {
							p, ok := nm.Peer(src.id)
							return ok && slices.Contains(p.Endpoints, ep)
						})
					}
				})
			}
		})
	}
}
