package storecopy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/keyring"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/tstest/pgtest"
)

// target is a kind of database to copy into.
type target struct {
	name string
	new  func(t testing.TB) Location // a fresh, not yet created, database
}

var sqliteTarget = target{"sqlite", func(t testing.TB) Location {
	return Location{Driver: SQLite, Path: filepath.Join(t.TempDir(), "target.db")}
}}

var postgresTarget = target{"postgres", func(t testing.TB) Location {
	return Location{Driver: Postgres, URL: pgtest.NewDatabase(t)}
}}

// targets are the stores a copy is tested into.
func targets() []target { return []target{sqliteTarget, postgresTarget} }

// newSource makes a populated SQLite database sealed with a fresh ring.
func newSource(t testing.TB, sz size) (Location, *keyring.Ring) {
	t.Helper()
	return newSourceAt(t, Location{Driver: SQLite, Path: filepath.Join(t.TempDir(), "source.db")}, sz)
}

// newSourceAt populates the store at loc, sealed with a fresh ring.
func newSourceAt(t testing.TB, loc Location, sz size) (Location, *keyring.Ring) {
	t.Helper()
	ring := newRing()
	st, err := store.OpenURL(context.Background(), loc.storeURL(), store.Options{Secrets: ring})
	if err != nil {
		t.Fatal(err)
	}
	populate(t, st, sz)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return loc, ring
}

// openStore opens loc as the coordinator would, with ring.
func openStore(t testing.TB, loc Location, ring *keyring.Ring) store.Store {
	t.Helper()
	var opts store.Options
	if ring != nil { // not a nil *Ring in the interface
		opts.Secrets = ring
	}
	st, err := store.OpenURL(context.Background(), loc.storeURL(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// dump reads every table of loc but schema_migrations as sorted lines of
// normalised values, columns in name order, so that databases of either
// driver compare.
func dump(t testing.TB, loc Location) map[string][]string {
	t.Helper()
	ctx := context.Background()
	db, err := openSQL(loc, true)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	d := dialect(loc.Driver)
	tables, err := d.tables(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string][]string)
	for tbl := range tables {
		if tbl == migrationsTable {
			continue
		}
		cols, err := d.columns(ctx, db, tbl)
		if err != nil {
			t.Fatal(err)
		}
		names := make([]string, len(cols))
		for i, c := range cols {
			names[i] = quote(c.name)
		}
		slices.Sort(names)
		rows, err := db.QueryContext(ctx, `SELECT `+strings.Join(names, ", ")+` FROM `+quote(tbl))
		if err != nil {
			t.Fatal(err)
		}
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		lines := []string{}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for i, v := range vals {
				if b2, ok := v.([]byte); ok {
					v = fmt.Sprintf("%x", b2)
				}
				fmt.Fprintf(&b, "%s=%v|", names[i], v)
			}
			lines = append(lines, b.String())
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		slices.Sort(lines)
		out[tbl] = lines
	}
	return out
}

// TestCopyLosesNothing migrates a populated database and finds every row
// of every table in the target, column by column; the coordinator's store
// then opens the sealed secrets with the same key and hands out IDs and
// addresses that do not collide with the copied ones.
func TestCopyLosesNothing(t *testing.T) {
	ctx := context.Background()
	src, ring := newSource(t, small)
	before := dump(t, src)
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			dst := tg.new(t)
			last := map[string][2]int64{}
			res, err := Copy(ctx, src, dst, Options{BatchRows: 333, Progress: func(table string, done, total int64) {
				last[table] = [2]int64{done, total}
			}})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Verified || res.SchemaVersion != store.SchemaVersion() {
				t.Fatalf("result %+v", res)
			}
			for _, tr := range res.Tables {
				if int64(len(before[tr.Name])) != tr.Rows {
					t.Errorf("%s: copied %d rows, the source has %d", tr.Name, tr.Rows, len(before[tr.Name]))
				}
				if p := last[tr.Name]; p[0] != p[1] || p[1] != tr.Rows {
					t.Errorf("%s: last progress %d/%d, want %d/%d", tr.Name, p[0], p[1], tr.Rows, tr.Rows)
				}
			}
			if len(res.Tables) != len(before) {
				t.Errorf("copied %d tables, the source has %d", len(res.Tables), len(before))
			}
			for _, want := range []string{"users", "nodes", "flows", "audit_events", "policies", "node_attrs", "access_requests", "high_water"} {
				if len(before[want]) == 0 {
					t.Errorf("the source has no %s: populate is incomplete", want)
				}
			}
			after := dump(t, dst)
			for tbl, rows := range before {
				if !slices.Equal(rows, after[tbl]) {
					t.Errorf("table %s differs: %d rows before, %d after", tbl, len(rows), len(after[tbl]))
					for i := range min(len(rows), len(after[tbl])) {
						if rows[i] != after[tbl][i] {
							t.Errorf("first difference:\n source %s\n target %s", rows[i], after[tbl][i])
							break
						}
					}
				}
			}
			checkUsable(t, dst, ring, small)
		})
	}
}

// TestCopyFromPostgres copies out of PostgreSQL, into SQLite and into
// another PostgreSQL database: nothing lost, and a sequence that handed
// out a since-deleted ID does not hand it out again.
func TestCopyFromPostgres(t *testing.T) {
	ctx := context.Background()
	sz := size{users: 10, nodes: 60, audit: 200, flows: 200}
	src, ring := newSourceAt(t, postgresTarget.new(t), sz)
	// The newest policy version is deleted: its ID stays used.
	db, err := openSQL(src, false)
	if err != nil {
		t.Fatal(err)
	}
	var deleted int64
	if err := db.QueryRow(`DELETE FROM policies WHERE id = (SELECT MAX(id) FROM policies) RETURNING id`).Scan(&deleted); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before := dump(t, src)
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			dst := tg.new(t)
			if _, err := Copy(ctx, src, dst, Options{}); err != nil {
				t.Fatal(err)
			}
			if after := dump(t, dst); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Error("the target differs from the source")
			}
			if dst.Driver == Postgres {
				st := openStore(t, dst, ring)
				p, err := st.SavePolicy(ctx, store.PolicyVersion{Hash: "h2", Source: "{}", Author: "test", Created: time.Now()})
				if err != nil || p.ID <= deleted {
					t.Errorf("policy saved after migration: ID %d (the source had handed out %d), %v", p.ID, deleted, err)
				}
				st.Close()
			}
			checkUsable(t, dst, ring, sz)
		})
	}
}

// checkUsable opens a migrated target as the coordinator would and checks
// that sealed secrets open and new rows get fresh IDs and addresses.
func checkUsable(t *testing.T, dst Location, ring *keyring.Ring, sz size) {
	t.Helper()
	ctx := context.Background()
	st := openStore(t, dst, ring)
	users, err := st.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users[:5] {
		want := totpOf(int(u.ID) - int(users[0].ID))
		if u.TOTPSecret != want {
			t.Errorf("user %s: TOTP secret %q after migration, want %q", u.Name, u.TOTPSecret, want)
		}
	}
	nodes, err := st.ListNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var maxID store.NodeID
	addrs := map[netip.Addr]bool{}
	for _, n := range nodes {
		maxID = max(maxID, n.ID)
		addrs[n.IPv4], addrs[n.IPv6] = true, true
	}
	// Three nodes were deleted before the copy: their IDs are not handed
	// out again either.
	n, err := st.CreateNode(ctx, store.Node{MachineKey: key.NewMachine().Public(), NodeKey: key.NewNode().Public(),
		DiscoKey: key.NewDisco().Public(), UserID: users[0].ID, Hostname: "after-migration", Created: time.Now()})
	if err != nil {
		t.Fatalf("create a node after migration: %v", err)
	}
	if n.ID <= maxID+3 || addrs[n.IPv4] || addrs[n.IPv6] {
		t.Errorf("new node %d %s %s collides with copied ones (highest ID %d)", n.ID, n.IPv4, n.IPv6, maxID)
	}
	u, err := st.CreateUser(ctx, store.User{Name: "new@example.com", Role: store.RoleMember, Created: time.Now()})
	if err != nil {
		t.Fatalf("create a user after migration: %v", err)
	}
	if u.ID <= users[len(users)-1].ID+1 {
		t.Errorf("new user ID %d reuses a copied or deleted one (highest copied %d)", u.ID, users[len(users)-1].ID)
	}
	old, err := st.ListPolicies(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.SavePolicy(ctx, store.PolicyVersion{Hash: "h", Source: "{}", Author: "test", Created: time.Now()})
	if err != nil {
		t.Fatalf("save a policy after migration: %v", err)
	}
	if p.ID <= old[0].ID {
		t.Errorf("new policy version %d, the newest copied is %d", p.ID, old[0].ID)
	}
	if err := st.AppendAudit(ctx, store.AuditEvent{Time: time.Now(), Actor: "system", Action: "test", Outcome: "ok"}); err != nil {
		t.Fatalf("append audit after migration: %v", err)
	}
	cur, err := st.SinkCursor(ctx, "siem", "audit")
	if err != nil {
		t.Fatal(err)
	}
	if after, err := st.ListAuditAfter(ctx, cur, 0); err != nil || len(after) != sz.audit-int(cur)+1 {
		t.Errorf("audit after the sink's cursor %d: %d events, %v; want %d", cur, len(after), err, sz.audit-int(cur)+1)
	}
}

// TestCopyRefuses: each refusal is a clear error and writes nothing.
func TestCopyRefuses(t *testing.T) {
	ctx := context.Background()
	src, _ := newSource(t, size{users: 3, nodes: 10, audit: 5, flows: 5})
	for _, tg := range targets() {
		tests := []struct {
			name string
			// setup returns the source and target to use.
			setup   func(t *testing.T) (from, to Location)
			wantErr string
			is      error
			created bool // whether the target exists after (it did before)
		}{
			{"non-empty target", func(t *testing.T) (Location, Location) {
				to := tg.new(t)
				if err := prepareTarget(ctx, to); err != nil {
					t.Fatal(err)
				}
				st := openStore(t, to, nil)
				if _, err := st.CreateUser(ctx, store.User{Name: "present", Role: store.RoleAdmin, Created: time.Now()}); err != nil {
					t.Fatal(err)
				}
				st.Close()
				return src, to
			}, "users (1 rows)", ErrNotEmpty, true},
			{"schema version mismatch", func(t *testing.T) (Location, Location) {
				old := copyFile(t, src)
				execSQLite(t, old.Path, `DELETE FROM schema_migrations WHERE version = (SELECT MAX(version) FROM schema_migrations)`)
				return old, tg.new(t)
			}, fmt.Sprintf("schema version %d, this warren-coordinator's is %d", store.SchemaVersion()-1, store.SchemaVersion()), ErrSchemaMismatch, false},
			{"missing source", func(t *testing.T) (Location, Location) {
				return Location{Driver: SQLite, Path: filepath.Join(t.TempDir(), "nope.db")}, tg.new(t)
			}, "no such file", nil, false},
			{"source not a database", func(t *testing.T) (Location, Location) {
				p := filepath.Join(t.TempDir(), "junk.db")
				if err := os.WriteFile(p, []byte(strings.Repeat("not a database ", 400)), 0o600); err != nil {
					t.Fatal(err)
				}
				return Location{Driver: SQLite, Path: p}, tg.new(t)
			}, "not a database", nil, false},
			{"source not a Warren database", func(t *testing.T) (Location, Location) {
				p := filepath.Join(t.TempDir(), "other.db")
				execSQLite(t, p, `CREATE TABLE things (id INTEGER PRIMARY KEY)`)
				return Location{Driver: SQLite, Path: p}, tg.new(t)
			}, "is not a Warren database", nil, false},
		}
		for _, tt := range tests {
			t.Run(tg.name+"/"+tt.name, func(t *testing.T) {
				from, to := tt.setup(t)
				var before map[string][]string
				if tt.created {
					before = dump(t, to)
				}
				res, err := Copy(ctx, from, to, Options{})
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || (tt.is != nil && !errors.Is(err, tt.is)) {
					t.Fatalf("Copy = %v, want an error with %q", err, tt.wantErr)
				}
				if res.Verified {
					t.Error("a refused copy says it was verified")
				}
				if tt.created {
					if after := dump(t, to); fmt.Sprint(after) != fmt.Sprint(before) {
						t.Error("the refused copy changed the target")
					}
				} else if exists(t, to) {
					t.Error("the refused copy created the target")
				}
			})
		}
	}
}

// TestCopySameFile refuses to copy a database onto itself.
func TestCopySameFile(t *testing.T) {
	src, _ := newSource(t, size{users: 3, nodes: 10, audit: 2, flows: 2})
	rel, err := filepath.Rel(mustGetwd(t), src.Path)
	if err != nil {
		t.Skip("no relative path to the temp dir:", err)
	}
	if _, err := Copy(context.Background(), src, Location{Driver: SQLite, Path: rel}, Options{}); err == nil || !strings.Contains(err.Error(), "same file") {
		t.Fatalf("Copy onto itself = %v", err)
	}
}

func mustGetwd(t *testing.T) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

// exists reports whether the database at loc exists.
func exists(t *testing.T, loc Location) bool {
	t.Helper()
	if loc.Driver == SQLite {
		_, err := os.Stat(loc.Path)
		return err == nil
	}
	db, err := openSQL(loc, true)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tables, err := dialect(Postgres).tables(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return len(tables) > 0
}

// copyFile copies a SQLite database file to a new temp file.
func copyFile(t *testing.T, loc Location) Location {
	t.Helper()
	b, err := os.ReadFile(loc.Path)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return Location{Driver: SQLite, Path: p}
}

// execSQLite runs statements on a SQLite file, creating it if need be.
func execSQLite(t *testing.T, path, stmt string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(stmt); err != nil {
		t.Fatal(err)
	}
}
