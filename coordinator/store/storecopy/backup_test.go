package storecopy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/store"
)

// TestBackupWhileWriting backs up a store that a writer keeps changing
// (each change a user and its audit event in one transaction): every
// backup opens as a store and holds whole transactions only.
func TestBackupWhileWriting(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src, _ := newSource(t, size{users: 3, nodes: 10, audit: 10, flows: 10})
	st := openStore(t, src, nil)
	const maxWrites = 5000
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		var err error
		defer func() { done <- err }()
		for i := 0; i < maxWrites && ctx.Err() == nil; i++ {
			err = st.Tx(ctx, func(q store.Queries) error {
				if _, err := q.CreateUser(ctx, store.User{Name: fmt.Sprintf("w-%d", i), Role: store.RoleMember, Created: time.Now()}); err != nil {
					return err
				}
				return q.AppendAudit(ctx, store.AuditEvent{Time: time.Now(), Actor: "test", Action: "test.write", Target: fmt.Sprint(i), Outcome: "ok"})
			})
			if ctx.Err() != nil {
				err = nil
				return
			}
			if err != nil {
				return
			}
			if i == 20 {
				close(started)
			}
		}
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("the writer stopped early: %v", err)
	}
	dir := t.TempDir()
	for i := range 3 {
		file := filepath.Join(dir, fmt.Sprintf("backup-%d.db", i))
		res, err := Backup(ctx, src, file)
		if err != nil {
			t.Fatal(err)
		}
		if res.SchemaVersion != store.SchemaVersion() || res.Bytes == 0 {
			t.Errorf("backup result %+v", res)
		}
		if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("backup file: %v, %v", fi, err)
		}
		if _, err := os.Stat(file + "-wal"); err == nil {
			t.Error("the backup left a WAL beside the file")
		}
		db, err := openSQL(Location{Driver: SQLite, Path: file}, true)
		if err != nil {
			t.Fatal(err)
		}
		var users, events int
		err = db.QueryRow(`SELECT (SELECT COUNT(*) FROM users WHERE name LIKE 'w-%'), (SELECT COUNT(*) FROM audit_events WHERE action = 'test.write')`).Scan(&users, &events)
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		if users != events || users < 20 {
			t.Errorf("backup %d: %d written users, %d of their audit events: not one snapshot", i, users, events)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("writer: %v", err)
	}
	// A backup never overwrites.
	if _, err := Backup(context.Background(), src, filepath.Join(dir, "backup-0.db")); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("backup over an existing file: %v", err)
	}
}

func TestRestore(t *testing.T) {
	ctx := context.Background()
	src, _ := newSource(t, size{users: 3, nodes: 10, audit: 10, flows: 10})
	backup := filepath.Join(t.TempDir(), "backup.db")
	if _, err := Backup(ctx, src, backup); err != nil {
		t.Fatal(err)
	}
	want := dump(t, src)
	newer := copyFile(t, Location{Driver: SQLite, Path: backup})
	execSQLite(t, newer.Path, fmt.Sprintf(`INSERT INTO schema_migrations (version, applied_at) VALUES (%d, 0)`, store.SchemaVersion()+1))
	notWarren := filepath.Join(t.TempDir(), "other.db")
	execSQLite(t, notWarren, `CREATE TABLE things (id INTEGER PRIMARY KEY)`)

	// fresh is a database a coordinator created and nothing else wrote.
	fresh := func(t *testing.T) string {
		p := filepath.Join(t.TempDir(), "warren.db")
		if err := prepareTarget(ctx, Location{Driver: SQLite, Path: p}); err != nil {
			t.Fatal(err)
		}
		return p
	}
	populated := func(t *testing.T) string {
		p := fresh(t)
		st := openStore(t, Location{Driver: SQLite, Path: p}, nil)
		if _, err := st.CreateUser(ctx, store.User{Name: "present", Role: store.RoleAdmin, Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
		st.Close()
		return p
	}
	tests := []struct {
		name    string
		file    string
		target  func(t *testing.T) string
		open    bool // a store has the target open during the restore
		force   bool
		wantErr string
		is      error
	}{
		{"into a new file", backup, func(t *testing.T) string { return filepath.Join(t.TempDir(), "new.db") }, false, false, "", nil},
		{"into a fresh database", backup, fresh, false, false, "", nil},
		{"into a populated database", backup, populated, false, false, "users (1 rows)", ErrNotEmpty},
		{"into a populated database with force", backup, populated, false, true, "", nil},
		{"into a database in use", backup, fresh, true, true, "has ", ErrInUse},
		{"from a newer schema", newer.Path, fresh, false, true, "does not know", nil},
		{"from a file that is not Warren's", notWarren, fresh, false, true, "not a Warren database", nil},
		{"from a missing file", filepath.Join(t.TempDir(), "nope.db"), fresh, false, true, "no such file", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := Location{Driver: SQLite, Path: tt.target(t)}
			var before map[string][]string
			if _, err := os.Stat(target.Path); err == nil {
				before = dump(t, target)
			}
			if tt.open {
				openStore(t, target, nil)
			}
			_, err := Restore(ctx, tt.file, target, tt.force)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				got := dump(t, target)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Error("the restored database differs from the one backed up")
				}
				st := openStore(t, target, nil)
				if nodes, err := st.ListNodes(ctx); err != nil || len(nodes) != 7 {
					t.Errorf("restored store: %d nodes, %v", len(nodes), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Fatalf("Restore = %v, want an error with %q", err, tt.wantErr)
			}
			if before != nil {
				if fmt.Sprint(dump(t, target)) != fmt.Sprint(before) {
					t.Error("the refused restore changed the target")
				}
			}
		})
	}
}

// TestPostgresBackupSaysPgDump: backup and restore of a PostgreSQL store
// name the PostgreSQL tools' commands, without the password, and fail.
func TestPostgresBackupSaysPgDump(t *testing.T) {
	ctx := context.Background()
	loc, err := ParseLocation("postgres://warren:s3cret@db.example.com/warren?sslmode=require")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Backup(ctx, loc, "/backups/warren.dump")
	if !errors.Is(err, ErrPostgres) || !strings.Contains(err.Error(), "pg_dump --format=custom --file=/backups/warren.dump 'postgres://warren:xxxxx@db.example.com/warren?sslmode=require'") {
		t.Errorf("Backup = %v", err)
	}
	_, err = Restore(ctx, "/backups/warren.dump", loc, false)
	if !errors.Is(err, ErrPostgres) || !strings.Contains(err.Error(), "pg_restore") || !strings.Contains(err.Error(), "migrate --from sqlite:") {
		t.Errorf("Restore = %v", err)
	}
	for _, e := range []error{err} {
		if strings.Contains(e.Error(), "s3cret") {
			t.Errorf("the error shows the password: %v", e)
		}
	}
}
