package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/key"
)

func openTest(t testing.TB) (Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "warren.db")
	s, err := Open(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func newNode(host string, user UserID) Node {
	return Node{MachineKey: key.NewMachine().Public(), NodeKey: key.NewNode().Public(), DiscoKey: key.NewDisco().Public(),
		UserID: user, Hostname: host, Created: time.Unix(1700000000, 0)}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestUsersAndKeys(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, _ := bk.openTest(t)
		ctx := context.Background()
		u, err := s.CreateUser(ctx, User{Name: "ann@example.com", Groups: []string{"eng"}, Role: RoleAdmin, Created: time.Now()})
		must(t, err)
		if _, err := s.CreateUser(ctx, User{Name: "ann@example.com", Role: RoleMember}); !errors.Is(err, ErrConflict) {
			t.Fatalf("duplicate user: %v", err)
		}
		got, err := s.GetUserByName(ctx, "ann@example.com")
		must(t, err)
		if got.ID != u.ID || got.Groups[0] != "eng" || got.Role != RoleAdmin {
			t.Fatalf("got %+v", got)
		}
		got.Disabled = true
		must(t, s.UpdateUser(ctx, got))
		if got, _ = s.GetUser(ctx, u.ID); !got.Disabled {
			t.Fatal("update lost")
		}
		if _, err := s.GetUser(ctx, 999); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing user: %v", err)
		}

		exp := time.Unix(1800000000, 0)
		k, err := s.CreateAuthKey(ctx, AuthKey{Prefix: "wpk_abcdefgh", Hash: []byte("h1"), UserID: u.ID, Tags: []string{"tag:db"}, Expiration: exp, Created: time.Now()})
		must(t, err)
		k.UsedCount, k.Revoked = 2, true
		must(t, s.UpdateAuthKey(ctx, k))
		byHash, err := s.GetAuthKeyByHash(ctx, []byte("h1"))
		must(t, err)
		if byHash.UsedCount != 2 || !byHash.Revoked || !byHash.Expiration.Equal(exp) || byHash.Tags[0] != "tag:db" {
			t.Fatalf("got %+v", byHash)
		}
		if _, err := s.CreateAuthKey(ctx, AuthKey{Hash: []byte("h1"), UserID: u.ID}); !errors.Is(err, ErrConflict) {
			t.Fatalf("duplicate hash: %v", err)
		}
		if _, err := s.CreateAuthKey(ctx, AuthKey{Hash: []byte("h2"), UserID: 999}); err == nil {
			t.Fatal("key for a missing user accepted")
		}
		ak, err := s.CreateAPIKey(ctx, APIKey{Prefix: "wak_x", Hash: []byte("a1"), UserID: u.ID, Created: time.Now()})
		must(t, err)
		ak.LastUsed = time.Unix(1750000000, 0)
		must(t, s.UpdateAPIKey(ctx, ak))
		if got, _ := s.GetAPIKeyByHash(ctx, []byte("a1")); !got.LastUsed.Equal(ak.LastUsed) {
			t.Fatalf("api key %+v", got)
		}
		must(t, s.AppendAudit(ctx, AuditEvent{Time: time.Unix(1, 0), Actor: "a", Action: "x.old", Outcome: "ok"}))
		must(t, s.AppendAudit(ctx, AuditEvent{Time: time.Unix(2, 0), Actor: "a", Action: "x.new", Outcome: "denied", Detail: `{"k":1}`}))
		events, err := s.ListAudit(ctx, AuditFilter{})
		must(t, err)
		if len(events) != 2 || events[0].Action != "x.new" || events[1].Detail != "{}" {
			t.Fatalf("audit %+v", events)
		}
		if events, _ := s.ListAudit(ctx, AuditFilter{Action: "x.old"}); len(events) != 1 {
			t.Fatalf("filtered audit %+v", events)
		}
		if events, _ := s.ListAudit(ctx, AuditFilter{Since: time.Unix(2, 0)}); len(events) != 1 {
			t.Fatalf("since audit %+v", events)
		}
	})
}

func TestNodesAddressesAndNames(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, _ := bk.openTest(t)
		ctx := context.Background()
		a, err := s.CreateNode(ctx, newNode("My Laptop", 1))
		must(t, err)
		b, err := s.CreateNode(ctx, newNode("my-laptop.local", 1))
		must(t, err)
		if a.Name != "my-laptop" || b.Name != "my-laptop-2" {
			t.Fatalf("names %q %q", a.Name, b.Name)
		}
		if a.IPv4 != netip.MustParseAddr("100.64.0.1") || b.IPv4 != netip.MustParseAddr("100.64.0.2") {
			t.Fatalf("addresses %v %v", a.IPv4, b.IPv4)
		}
		if a.IPv6 != netip.MustParseAddr("fd7a:115c:a1e0::6440:1") {
			t.Fatalf("IPv6 %v", a.IPv6)
		}
		// Keys and lists round-trip; addresses survive updates.
		a.Tags = []string{"tag:db"}
		a.Endpoints = []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:41641")}
		a.NodeKey = key.NewNode().Public()
		a.Hostname = "db 1"
		a.KeyExpiry = time.Unix(1900000000, 0)
		up, err := s.UpdateNode(ctx, a)
		must(t, err)
		if up.IPv4 != a.IPv4 || up.Name != "db-1" || up.NodeKey != a.NodeKey || up.Tags[0] != "tag:db" || up.Endpoints[0] != a.Endpoints[0] || !up.KeyExpiry.Equal(a.KeyExpiry) {
			t.Fatalf("updated %+v", up)
		}
		byKey, err := s.GetNodeByMachineKey(ctx, a.MachineKey)
		must(t, err)
		if byKey.ID != a.ID {
			t.Fatal("lookup by machine key")
		}
		if _, err := s.GetNodeByNodeKey(ctx, key.NewNode().Public()); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown node key: %v", err)
		}
		dup := newNode("x", 1)
		dup.MachineKey = a.MachineKey
		if _, err := s.CreateNode(ctx, dup); !errors.Is(err, ErrConflict) {
			t.Fatalf("duplicate machine key: %v", err)
		}
		must(t, s.DeleteNode(ctx, b.ID))
		if err := s.DeleteNode(ctx, b.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("delete twice: %v", err)
		}
	})
}

func TestTxRollback(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, _ := bk.openTest(t)
		ctx := context.Background()
		boom := errors.New("boom")
		err := s.Tx(ctx, func(q Queries) error {
			u, err := q.CreateUser(ctx, User{Name: "ghost", Role: RoleMember})
			must(t, err)
			_, err = q.CreateNode(ctx, newNode("ghost-laptop", u.ID))
			must(t, err)
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Tx = %v", err)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("panic swallowed")
				}
			}()
			_ = s.Tx(ctx, func(q Queries) error {
				_, _ = q.CreateUser(ctx, User{Name: "panicker", Role: RoleMember})
				panic("inside tx")
			})
		}()
		users, _ := s.ListUsers(ctx)
		nodes, _ := s.ListNodes(ctx)
		if len(users) != 0 || len(nodes) != 0 {
			t.Fatalf("rolled-back writes kept: %d users, %d nodes", len(users), len(nodes))
		}
	})
}

func TestDeleteUserKeepsTaggedNodes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, _ := bk.openTest(t)
		ctx := context.Background()
		u, err := s.CreateUser(ctx, User{Name: "leaver", Role: RoleMember})
		must(t, err)
		_, err = s.CreateNode(ctx, newNode("laptop", u.ID))
		must(t, err)
		server := newNode("db", u.ID)
		server.Tags = []string{"tag:db"}
		server, err = s.CreateNode(ctx, server)
		must(t, err)
		_, err = s.CreateAuthKey(ctx, AuthKey{Hash: []byte("k"), UserID: u.ID})
		must(t, err)
		_, err = s.CreateAPIKey(ctx, APIKey{Hash: []byte("a"), UserID: u.ID})
		must(t, err)
		must(t, s.DeleteUser(ctx, u.ID))
		nodes, _ := s.ListNodes(ctx)
		keys, _ := s.ListAuthKeys(ctx)
		apiKeys, _ := s.ListAPIKeys(ctx)
		if len(nodes) != 1 || nodes[0].ID != server.ID || len(keys) != 0 || len(apiKeys) != 0 {
			t.Fatalf("after delete: nodes %+v, keys %d, api keys %d", nodes, len(keys), len(apiKeys))
		}
		if err := s.DeleteUser(ctx, u.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("delete twice: %v", err)
		}
	})
}

// schemaVersions reads schema_migrations directly.
func schemaVersions(t *testing.T, bk backend, url string) []int {
	t.Helper()
	rows, err := bk.raw(t, url).QueryContext(context.Background(), `SELECT version FROM schema_migrations ORDER BY version`)
	must(t, err)
	defer rows.Close()
	var out []int
	for rows.Next() {
		var v int
		must(t, rows.Scan(&v))
		out = append(out, v)
	}
	must(t, rows.Err())
	return out
}

func TestMigrations(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, path := bk.openTest(t)
		ctx := context.Background()
		_, err := s.CreateUser(ctx, User{Name: "kept", Role: RoleMember})
		must(t, err)
		must(t, s.Close())
		latest := migrations[len(migrations)-1].version
		var want []int
		for _, m := range migrations {
			want = append(want, m.version)
		}
		if got := schemaVersions(t, bk, path); !slices.Equal(got, want) {
			t.Fatalf("versions after first open %v, want %v", got, want)
		}
		s2, err := OpenURL(ctx, path, Options{})
		must(t, err)
		if _, err := s2.GetUserByName(ctx, "kept"); err != nil {
			t.Fatalf("data lost on reopen: %v", err)
		}
		must(t, s2.Close())
		if got := schemaVersions(t, bk, path); !slices.Equal(got, want) {
			t.Fatalf("versions after reopen %v, want %v (re-applied?)", got, want)
		}

		_, err = bk.raw(t, path).ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)`, latest+1)
		must(t, err)
		wantErr := fmt.Sprintf("database schema version %d is newer than this coordinator (%d); upgrade warren-coordinator", latest+1, latest)
		if _, err := OpenURL(ctx, path, Options{}); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("future schema: %v, want %q", err, wantErr)
		}
	})
}

func TestConcurrentOpen(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		path := bk.newURL(t)
		ctx := context.Background()
		const openers = 4
		errs := make(chan error, openers)
		stores := make(chan Store, openers)
		for range openers {
			go func() {
				s, err := OpenURL(ctx, path, Options{})
				if err == nil {
					stores <- s
				}
				errs <- err
			}()
		}
		for range openers {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		close(stores)
		for s := range stores {
			must(t, s.Close())
		}
		if got := schemaVersions(t, bk, path); len(got) != len(migrations) {
			t.Fatalf("versions %v after concurrent opens", got)
		}
	})
}

func TestDNSLabel(t *testing.T) {
	for in, want := range map[string]string{
		"My Laptop": "my-laptop", "db-1.corp.example.com": "db-1", "--x--": "x", "": "node", "ÄÖÜ": "node",
		"a__b": "a-b", strings.Repeat("a", 100): strings.Repeat("a", 63), ".hidden": "hidden",
	} {
		if got := DNSLabel(in); got != want {
			t.Errorf("DNSLabel(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzDNSLabel(f *testing.F) {
	for _, s := range []string{"My Laptop", "a.b", "", "-", strings.Repeat("x-", 40)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l := DNSLabel(s)
		if len(l) == 0 || len(l) > maxLabel || l[0] == '-' || l[len(l)-1] == '-' {
			t.Fatalf("DNSLabel(%q) = %q: not a valid label", s, l)
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				t.Fatalf("DNSLabel(%q) = %q: bad character %q", s, l, r)
			}
		}
		if DNSLabel(l) != l {
			t.Fatalf("DNSLabel not idempotent on %q", l)
		}
	})
}

// cheapNode is a node with distinct keys made without the cost of key
// generation, which would otherwise dominate the benchmarks.
func cheapNode(i int, hostname string) Node {
	var raw [32]byte
	binary.BigEndian.PutUint64(raw[:], uint64(i)+1)
	return Node{MachineKey: key.PublicFromRaw[key.MachineKind](raw), NodeKey: key.PublicFromRaw[key.NodeKind](raw),
		DiscoKey: key.PublicFromRaw[key.DiscoKind](raw), UserID: 1, Hostname: hostname, Created: time.Unix(1700000000, 0)}
}

// benchCreateNode measures one CreateNode in a database of seeded nodes,
// on each backend; hostname names the i-th node.
func benchCreateNode(b *testing.B, seeded int, hostname func(i int) string) {
	for _, bk := range backends {
		b.Run(bk.name, func(b *testing.B) { benchCreateNodeOn(b, bk, seeded, hostname) })
	}
}

func benchCreateNodeOn(b *testing.B, bk backend, seeded int, hostname func(i int) string) {
	s, _ := bk.openTest(b)
	ctx := context.Background()
	err := s.Tx(ctx, func(q Queries) error {
		for i := range seeded {
			if _, err := q.CreateNode(ctx, cheapNode(i, hostname(i))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.CreateNode(ctx, cheapNode(seeded+i, hostname(seeded+i))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateNode is one CreateNode in a database of 10,000 nodes.
func BenchmarkCreateNode(b *testing.B) {
	benchCreateNode(b, 10000, func(i int) string { return fmt.Sprint("host ", i) })
}

// BenchmarkCreateNodeSameHostname is the worst case for naming: 1,000
// nodes that all report the same hostname, so every new one needs the
// next free suffix.
func BenchmarkCreateNodeSameHostname(b *testing.B) {
	benchCreateNode(b, 1000, func(int) string { return "raspberrypi" })
}

func TestIdentityCredentialsAndPending(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, _ := bk.openTest(t)
		ctx := context.Background()
		mfa := time.Unix(1_800_000_000, 0)
		u, err := s.CreateUser(ctx, User{Name: "ann@example.com", Role: RoleMember, Issuer: "https://idp.example.com", Subject: "sub-1", MFAAt: mfa})
		must(t, err)
		got, err := s.GetUserByIdentity(ctx, "https://idp.example.com", "sub-1")
		must(t, err)
		if got.ID != u.ID || !got.MFAAt.Equal(mfa) {
			t.Fatalf("by identity: %+v", got)
		}
		for _, bad := range [][2]string{{"https://other.example.com", "sub-1"}, {"https://idp.example.com", ""}, {"", ""}} {
			if _, err := s.GetUserByIdentity(ctx, bad[0], bad[1]); !errors.Is(err, ErrNotFound) {
				t.Errorf("identity %q: %v, want not found", bad, err)
			}
		}
		if _, err := s.CreateUser(ctx, User{Name: "imposter", Role: RoleMember, Issuer: "https://idp.example.com", Subject: "sub-1"}); !errors.Is(err, ErrConflict) {
			t.Fatalf("second user with the same identity: %v, want conflict", err)
		}
		// Local users have no identity; many may share the empty pair.
		for _, name := range []string{"local1", "local2"} {
			_, err := s.CreateUser(ctx, User{Name: name, Role: RoleMember, PasswordHash: "$argon2id$…", TOTPSecret: "JBSWY3DPEHPK3PXP"})
			must(t, err)
		}
		l, err := s.GetUserByName(ctx, "local2")
		must(t, err)
		if l.PasswordHash != "$argon2id$…" || l.TOTPSecret != "JBSWY3DPEHPK3PXP" {
			t.Fatalf("credentials lost: %+v", l)
		}
		l.MFAAt = mfa.Add(time.Hour)
		must(t, s.UpdateUser(ctx, l))
		if l2, _ := s.GetUser(ctx, l.ID); !l2.MFAAt.Equal(l.MFAAt) {
			t.Fatalf("mfa time not updated: %v", l2.MFAAt)
		}
		// The IdP refresh token and the time of the last check round-trip.
		u.RefreshToken, u.IdPCheckedAt = "rt-secret", mfa.Add(2*time.Hour)
		must(t, s.UpdateUser(ctx, u))
		if u2, _ := s.GetUser(ctx, u.ID); u2.RefreshToken != "rt-secret" || !u2.IdPCheckedAt.Equal(u.IdPCheckedAt) {
			t.Fatalf("refresh state not stored: %+v", u2)
		}
		n, err := s.CreateNode(ctx, Node{MachineKey: key.NewMachine().Public(), NodeKey: key.NewNode().Public(),
			DiscoKey: key.NewDisco().Public(), UserID: u.ID, Hostname: "laptop", Pending: true})
		must(t, err)
		if !n.Pending {
			t.Fatal("pending lost on create")
		}
		n.Pending = false
		n, err = s.UpdateNode(ctx, n)
		must(t, err)
		if got, _ := s.GetNode(ctx, n.ID); got.Pending {
			t.Fatal("approval not stored")
		}
	})
}

func TestNodeKeyLifetime(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, path := bk.openTest(t)
		ctx := context.Background()
		for _, tc := range []struct {
			name      string
			set, want time.Duration
		}{
			{"default", 0, 0},
			{"never", KeyLifetimeNever, KeyLifetimeNever},
			{"any negative is never", -5 * time.Hour, KeyLifetimeNever},
			{"hours", 720 * time.Hour, 720 * time.Hour},
			{"ten years", 10 * 365 * 24 * time.Hour, 10 * 365 * 24 * time.Hour},
			{"whole seconds", 90*time.Second + 500*time.Millisecond, 90 * time.Second},
		} {
			t.Run(tc.name, func(t *testing.T) {
				n := newNode("lifetime-"+strings.ReplaceAll(tc.name, " ", "-"), 1)
				n.KeyLifetime = tc.set
				got, err := s.CreateNode(ctx, n)
				must(t, err)
				if got.KeyLifetime != tc.want {
					t.Fatalf("created with %v: got %v, want %v", tc.set, got.KeyLifetime, tc.want)
				}
				// Update from the default to the value and back.
				got.KeyLifetime = 0
				got, err = s.UpdateNode(ctx, got)
				must(t, err)
				got.KeyLifetime = tc.set
				_, err = s.UpdateNode(ctx, got)
				must(t, err)
				if stored, _ := s.GetNode(ctx, got.ID); stored.KeyLifetime != tc.want {
					t.Fatalf("updated to %v: stored %v, want %v", tc.set, stored.KeyLifetime, tc.want)
				}
			})
		}

		// A node stored before migration 4 gets the default (later migrations
		// are undone too, so that 4 runs again).
		n, err := s.CreateNode(ctx, newNode("old-laptop", 1))
		must(t, err)
		must(t, s.Close())
		db := bk.raw(t, path)
		_, err = db.ExecContext(ctx, `ALTER TABLE nodes DROP COLUMN key_lifetime_seconds;
		ALTER TABLE users DROP COLUMN refresh_token; ALTER TABLE users DROP COLUMN idp_checked_at;
		ALTER TABLE auth_keys DROP COLUMN creator_id; ALTER TABLE nodes DROP COLUMN given_name;
		ALTER TABLE nodes DROP COLUMN advertised_routes; ALTER TABLE nodes DROP COLUMN approved_routes;
			DROP TABLE node_attrs; ALTER TABLE api_keys DROP COLUMN role; ALTER TABLE api_keys DROP COLUMN name;
		DROP TABLE high_water; ALTER TABLE users DROP COLUMN totp_last_step; DROP TABLE sink_cursors;
		DROP TABLE flows; DROP INDEX audit_actor; DROP INDEX audit_target; DROP TABLE access_requests;
		DROP TABLE changes; DROP TABLE replicas; DROP TABLE node_sessions; DROP TABLE leases; DROP TABLE ssh_sessions; ALTER TABLE users DROP COLUMN display_name;
		DELETE FROM schema_migrations WHERE version >= 4`)
		must(t, err)
		s2, err := OpenURL(ctx, path, Options{})
		must(t, err)
		defer s2.Close()
		got, err := s2.GetNode(ctx, n.ID)
		must(t, err)
		if got.KeyLifetime != 0 || got.Hostname != "old-laptop" {
			t.Fatalf("node from before migration 4: %+v", got)
		}
	})
}
