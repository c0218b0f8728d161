package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/warrenmesh/warren/internal/tstest/pgtest"
	"github.com/warrenmesh/warren/internal/tstest/poll"
)

// TestPostgresStoresShareOneDatabase is the test for replicas: two
// stores (as two coordinator processes would open them) on one PostgreSQL
// database register nodes with one reusable key and create users, all at
// once. Every transaction commits; no ID, address or name is handed out
// twice; and the key's use count, read and written back in each
// registration's transaction, loses no increment.
func TestPostgresStoresShareOneDatabase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, b, u, k := twoStoresWithKey(ctx, t)
	const workers, each = 4, 15 // per store
	start := make(chan struct{})
	errs := make(chan error, 2*workers*each*2)
	var wg sync.WaitGroup
	for si, s := range []Store{a, b} {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for i := range each {
					errs <- registerWithKey(ctx, s, k.Hash, newNode(fmt.Sprintf("host-%d", i%3), u.ID))
					_, err := s.CreateUser(ctx, User{Name: fmt.Sprintf("user-%d-%d-%d", si, w, i), Role: RoleMember})
					errs <- err
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	const registered = 2 * workers * each
	nodes, err := b.ListNodes(ctx)
	must(t, err)
	ids, addrs, names := map[NodeID]bool{}, map[netip.Addr]bool{}, map[string]bool{}
	for _, n := range nodes {
		if ids[n.ID] || addrs[n.IPv4] || addrs[n.IPv6] || names[n.Name] {
			t.Fatalf("handed out twice: %+v", n)
		}
		ids[n.ID], addrs[n.IPv4], addrs[n.IPv6], names[n.Name] = true, true, true, true
	}
	users, err := a.ListUsers(ctx)
	must(t, err)
	if len(nodes) != registered || len(users) != registered+1 {
		t.Fatalf("%d nodes and %d users, want %d and %d", len(nodes), len(users), registered, registered+1)
	}
	if k, err = b.GetAuthKey(ctx, k.ID); err != nil || k.UsedCount != registered {
		t.Fatalf("key used %d times (%v), want %d: an increment was lost", k.UsedCount, err, registered)
	}
	events, err := a.ListAudit(ctx, AuditFilter{Action: "node.register", Limit: maxAuditLimit})
	must(t, err)
	if len(events) != registered {
		t.Fatalf("%d audit events, want %d", len(events), registered)
	}
}

// twoStoresWithKey opens two stores on one fresh PostgreSQL database, as
// two coordinator processes would, with a member user and a reusable
// pre-auth key of theirs made through the first.
func twoStoresWithKey(ctx context.Context, t *testing.T) (a, b Store, u User, k AuthKey) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	pg := backends[1]
	a, b = pg.reopen(t, url, Options{}), pg.reopen(t, url, Options{})
	u, err := a.CreateUser(ctx, User{Name: "ann@example.com", Role: RoleMember})
	must(t, err)
	k, err = a.CreateAuthKey(ctx, AuthKey{Prefix: "wak_x", Hash: []byte("reusable"), UserID: u.ID, Reusable: true})
	must(t, err)
	return a, b, u, k
}

// registerWithKey does what a registration with a pre-auth key does to
// the store, in one transaction: check the key and the node's keys,
// create the node, count the key's use, audit.
func registerWithKey(ctx context.Context, s Store, hash []byte, node Node) error {
	return s.Tx(ctx, func(q Queries) error {
		key, err := q.GetAuthKeyByHash(ctx, hash)
		if err != nil {
			return err
		}
		if _, err := q.GetNodeByNodeKey(ctx, node.NodeKey); !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("node key: %w", err)
		}
		n, err := q.CreateNode(ctx, node)
		if err != nil {
			return err
		}
		key.UsedCount++
		if err := q.UpdateAuthKey(ctx, key); err != nil {
			return err
		}
		return q.AppendAudit(ctx, AuditEvent{Time: time.Now(), Actor: "system", Action: "node.register",
			Target: fmt.Sprintf("node:%d", n.ID), Outcome: "ok"})
	})
}

// TestPostgresWriteWaitsForTransaction is the regression test for a write
// made on one store while another store's transaction has read the same
// row and will write it back: the write must wait for the transaction
// (as on SQLite's one writer), so an admin's revocation is never undone
// by a registration that read the key before it.
func TestPostgresWriteWaitsForTransaction(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, b, _, k := twoStoresWithKey(ctx, t)
	var err error
	revoked := make(chan error, 1)
	err = a.Tx(ctx, func(q Queries) error {
		key, err := q.GetAuthKey(ctx, k.ID)
		if err != nil {
			return err
		}
		go func() {
			r := k
			r.Revoked = true
			revoked <- b.UpdateAuthKey(ctx, r)
		}()
		// Go on once the revocation has either finished (the defect) or
		// is waiting for the write lock.
		poll.Until(t, 30*time.Second, "revocation done or waiting", func() error {
			if len(revoked) > 0 {
				return nil
			}
			var waiting int
			if err := b.(*sqlStore).r.q.QueryRowContext(ctx,
				`SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
					AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&waiting); err != nil {
				return err
			}
			if waiting == 0 {
				return errors.New("no writer waiting yet")
			}
			return nil
		})
		key.UsedCount++
		return q.UpdateAuthKey(ctx, key)
	})
	must(t, err)
	must(t, <-revoked)
	if k, err = a.GetAuthKey(ctx, k.ID); err != nil || !k.Revoked {
		t.Fatalf("key after a revocation during a registration: %+v, %v; the revocation was lost", k, err)
	}
}

// TestPostgresOrderIsBytewise: listings come in SQLite's order (bytes),
// not the database locale's, which for en-US puts "mdma" before
// "mdmCompliant" (case counts last) and, with glibc's, "aa" before "a-b"
// (punctuation counts last). The store runs on a database whose default
// collation is ICU's en-US.
func TestPostgresOrderIsBytewise(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, url)
	must(t, err)
	defer admin.Close(ctx)
	name := fmt.Sprintf("warren_icu_%d", time.Now().UnixNano())
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+name+` TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'`); err != nil {
		t.Skipf("no ICU collation in this PostgreSQL: %v", err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), `DROP DATABASE `+name+` WITH (FORCE)`) })
	cfg, err := pgx.ParseConfig(url)
	must(t, err)
	icuURL := strings.Replace(url, "/"+cfg.Database+"?", "/"+name+"?", 1)
	s := backends[1].reopen(t, icuURL, Options{})
	labels := []string{"ac", "a-b", "aa", "ab"}
	var first NodeID
	for _, l := range labels {
		n, err := s.CreateNode(ctx, newNode(l, 1))
		must(t, err)
		if first == 0 {
			first = n.ID
		}
	}
	attrNames := []string{"mdma", "mdmCompliant", "MDM", "mdm-x"}
	for _, a := range attrNames {
		must(t, s.PutNodeAttr(ctx, NodeAttr{Node: first, Name: "custom:" + a, Value: "1", Source: "admin", ReportedAt: time.Now()}))
	}
	want := slices.Clone(labels)
	slices.Sort(want)
	page, _, err := s.ListNodePage(ctx, NodePageFilter{})
	must(t, err)
	var got []string
	for _, n := range page {
		got = append(got, n.Name)
	}
	if !slices.Equal(got, want) {
		t.Errorf("nodes listed as %v, want %v", got, want)
	}
	attrs, err := s.ListNodeAttrs(ctx, first)
	must(t, err)
	got = nil
	for _, a := range attrs {
		got = append(got, strings.TrimPrefix(a.Name, "custom:"))
	}
	want = slices.Clone(attrNames)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("attributes listed as %v, want %v", got, want)
	}
}

// TestPostgresIdleTransactionTimeout: the store's sessions end a
// transaction left idle (its coordinator stopped mid-way), releasing the
// write lock, unless the URL chose another limit.
func TestPostgresIdleTransactionTimeout(t *testing.T) {
	url := pgtest.NewDatabase(t)
	pg := backends[1]
	ctx := context.Background()
	for _, tc := range []struct{ url, want string }{
		{url, "1min"},
		{url + "&idle_in_transaction_session_timeout=5000", "5s"},
	} {
		s := pg.reopen(t, tc.url, Options{})
		var got string
		must(t, s.(*sqlStore).r.q.QueryRowContext(ctx, `SHOW idle_in_transaction_session_timeout`).Scan(&got))
		if got != tc.want {
			t.Errorf("idle_in_transaction_session_timeout %q, want %q", got, tc.want)
		}
	}
}
