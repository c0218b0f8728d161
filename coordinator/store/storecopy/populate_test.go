package storecopy

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/keyring"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
)

// size is how much populate writes.
type size struct {
	users, nodes, audit, flows int
}

// benchSize is the benchmark's size (small, the tests', is in
// norace_test.go and race_test.go).
var benchSize = size{users: 100, nodes: 1000, audit: 10000, flows: 50000}

// totpOf is the TOTP secret populate gives user i (sealed in the store).
func totpOf(i int) string { return fmt.Sprintf("JBSWY3DPEHPK3PXP%016d", i) }

// populate fills st with every kind of row the store keeps: users (some
// with sealed TOTP secrets and refresh tokens), nodes with routes and
// attributes, pre-auth and API keys, several policy versions, audit
// events, flows, access requests and a sink cursor.
func populate(tb testing.TB, st store.Store, sz size) {
	tb.Helper()
	ctx := context.Background()
	base := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	err := st.Tx(ctx, func(q store.Queries) error {
		var users []store.User
		for i := range sz.users {
			u := store.User{Name: fmt.Sprintf("user%d@example.com", i), Email: fmt.Sprintf("user%d@example.com", i),
				Groups: []string{"group:eng"}, Role: store.RoleMember, Created: base.Add(time.Duration(i) * time.Minute),
				TOTPSecret: totpOf(i), PasswordHash: "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA"}
			if i == 0 {
				u.Role = store.RoleAdmin
			}
			if i%3 == 0 {
				u.RefreshToken = fmt.Sprintf("refresh-%d", i)
				u.Issuer, u.Subject = "https://idp.example.com", fmt.Sprintf("sub-%d", i)
			}
			u.Disabled = i%7 == 6
			u, err := q.CreateUser(ctx, u)
			if err != nil {
				return err
			}
			users = append(users, u)
		}
		// A deleted user leaves a gap in the IDs and a high-water mark.
		if err := q.DeleteUser(ctx, users[len(users)-1].ID); err != nil {
			return err
		}
		users = users[:len(users)-1]
		var akeys []store.AuthKey
		for i := range 20 {
			h := sha256.Sum256(fmt.Appendf(nil, "authkey-%d", i))
			k, err := q.CreateAuthKey(ctx, store.AuthKey{Prefix: fmt.Sprintf("wak%d", i), Hash: h[:], UserID: users[i%len(users)].ID,
				CreatorID: users[0].ID, Reusable: i%2 == 0, Ephemeral: i%5 == 0, Tags: []string{"tag:ci"},
				Expiration: base.Add(48 * time.Hour), Created: base})
			if err != nil {
				return err
			}
			akeys = append(akeys, k)
		}
		for i := range 10 {
			h := sha256.Sum256(fmt.Appendf(nil, "apikey-%d", i))
			k := store.APIKey{Prefix: fmt.Sprintf("wapi%d", i), Hash: h[:], UserID: users[0].ID, Created: base, LastUsed: base.Add(time.Hour)}
			if i%4 == 0 {
				k.Role, k.Name = store.APIKeyIntegration, fmt.Sprintf("mdm-%d", i)
			}
			if _, err := q.CreateAPIKey(ctx, k); err != nil {
				return err
			}
		}
		var nodes []store.Node
		for i := range sz.nodes {
			n := store.Node{MachineKey: key.NewMachine().Public(), NodeKey: key.NewNode().Public(), DiscoKey: key.NewDisco().Public(),
				UserID: users[i%len(users)].ID, Hostname: fmt.Sprintf("host-%d", i), Created: base.Add(time.Duration(i) * time.Second),
				LastSeen: base.Add(time.Hour), Endpoints: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:41641")}, HomeRelay: 1 + i%3}
			if i%10 == 0 {
				n.Tags = []string{"tag:server"}
				n.AuthKeyID = akeys[i%len(akeys)].ID
				n.AdvertisedRoutes = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}
				n.ApprovedRoutes = n.AdvertisedRoutes
			}
			n.Pending = i%97 == 5
			n, err := q.CreateNode(ctx, n)
			if err != nil {
				return err
			}
			nodes = append(nodes, n)
			if err := q.PutNodeAttr(ctx, store.NodeAttr{Node: n.ID, Name: "node:os", Value: "linux", Source: "node",
				CollectedAt: base, ReportedAt: base.Add(time.Minute)}); err != nil {
				return err
			}
			if i%2 == 0 {
				if err := q.PutNodeAttr(ctx, store.NodeAttr{Node: n.ID, Name: "custom:mdm", Value: "true", Source: "integration mdm-0",
					ReportedAt: base, ExpiresAt: base.Add(24 * time.Hour)}); err != nil {
					return err
				}
			}
		}
		// Deleted nodes leave gaps in IDs and addresses.
		for _, n := range nodes[len(nodes)-3:] {
			if err := q.DeleteNode(ctx, n.ID); err != nil {
				return err
			}
		}
		nodes = nodes[:len(nodes)-3]
		for v := range 5 {
			src := fmt.Sprintf("{\"acls\": [{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"*:%d\"]}]}", 22+v)
			h := sha256.Sum256([]byte(src))
			if _, err := q.SavePolicy(ctx, store.PolicyVersion{Hash: fmt.Sprintf("%x", h), Source: src, Author: "file:/etc/warren/policy.hujson",
				Diff: fmt.Sprintf("-%d\n+%d\n", 21+v, 22+v), Created: base.Add(time.Duration(v) * time.Hour)}); err != nil {
				return err
			}
		}
		for i := range sz.audit {
			if err := q.AppendAudit(ctx, store.AuditEvent{Time: base.Add(time.Duration(i) * time.Second), Actor: "user:user0@example.com",
				Action: "node.register", Target: fmt.Sprintf("node:%d", nodes[i%len(nodes)].ID), Remote: "203.0.113.9:4433",
				Outcome: "ok", Detail: `{"n":` + fmt.Sprint(i) + `}`}); err != nil {
				return err
			}
		}
		flows := make([]store.Flow, 0, 1000)
		for i := range sz.flows {
			a, b := nodes[i%len(nodes)], nodes[(i+1)%len(nodes)]
			flows = append(flows, store.Flow{ID: fmt.Sprintf("f%d", i), Reporter: a.ID, Start: base.Add(time.Duration(i) * time.Millisecond),
				End: base.Add(time.Duration(i)*time.Millisecond + time.Second), Src: netip.AddrPortFrom(a.IPv4, 40000), Dst: netip.AddrPortFrom(b.IPv4, 22),
				Proto: 6, SrcNode: a.ID, DstNode: b.ID, SrcUser: "user1@example.com", DstTags: []string{"tag:server"},
				PacketsIn: 10, BytesIn: 1000, PacketsOut: 12, BytesOut: 1400, Verdict: "accept", Rule: "acls[0]", Count: 1})
			if len(flows) == cap(flows) || i == sz.flows-1 {
				if _, err := q.InsertFlows(ctx, flows); err != nil {
					return err
				}
				flows = flows[:0]
			}
		}
		for i := range 50 {
			r, err := q.CreateAccessRequest(ctx, store.AccessRequest{NodeID: nodes[i%len(nodes)].ID, NodeName: nodes[i%len(nodes)].Name, UserID: nodes[i%len(nodes)].UserID,
				Login: "user1@example.com", Dst: "tag:prod-db:5432", Rule: "access[0]", Reason: "incident 42",
				Requested: time.Hour, Duration: time.Hour, State: "pending", Created: base})
			if err != nil {
				return err
			}
			if i%2 == 0 {
				r.State, r.Approver, r.Decided, r.Expires = "active", "user:user0@example.com", base.Add(time.Minute), base.Add(time.Hour)
				if err := q.UpdateAccessRequest(ctx, r); err != nil {
					return err
				}
			}
		}
		return q.SetSinkCursor(ctx, "siem", "audit", int64(sz.audit/2))
	})
	if err != nil {
		tb.Fatalf("populate: %v", err)
	}
}

// newRing is a key ring for sealing the test's secrets.
func newRing() *keyring.Ring { return keyring.New() }
