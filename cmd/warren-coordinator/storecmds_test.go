package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/coordinator/store/storecopy"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/tstest/pgtest"
)

// populatedStateDir is a state directory whose warren.db holds a few
// users, nodes and audit events.
func populatedStateDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "warren.db"), nil)
	must(t, err)
	defer st.Close()
	for i := range 3 {
		u, err := st.CreateUser(ctx, store.User{Name: fmt.Sprintf("u%d@example.com", i), Role: store.RoleMember, Created: time.Now()})
		must(t, err)
		_, err = st.CreateNode(ctx, store.Node{MachineKey: key.NewMachine().Public(), NodeKey: key.NewNode().Public(),
			DiscoKey: key.NewDisco().Public(), UserID: u.ID, Hostname: fmt.Sprintf("h%d", i), Created: time.Now()})
		must(t, err)
		must(t, st.AppendAudit(ctx, store.AuditEvent{Time: time.Now(), Actor: "system", Action: "test", Outcome: "ok"}))
	}
	return dir
}

// runCLIErr runs one command and returns its stdout, stderr and error.
func runCLIErr(args ...string) (string, string, error) {
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func TestMigrateCLI(t *testing.T) {
	dir := populatedStateDir(t)
	from := "sqlite://" + filepath.Join(dir, "warren.db")
	targets := map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "new.db") },
		"postgres": func(t *testing.T) string { return pgtest.NewDatabase(t) },
	}
	for name, newTarget := range targets {
		t.Run(name, func(t *testing.T) {
			to := newTarget(t)
			out, errOut, err := runCLIErr("migrate", "--from", from, "--to", to, "--json")
			if err != nil {
				t.Fatalf("migrate: %v\n%s", err, errOut)
			}
			var res storecopy.Result
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("--json output %q: %v", out, err)
			}
			rows := map[string]int64{}
			for _, tr := range res.Tables {
				rows[tr.Name] = tr.Rows
			}
			if !res.Verified || rows["users"] != 3 || rows["nodes"] != 3 || rows["audit_events"] != 3 || res.SchemaVersion != store.SchemaVersion() {
				t.Errorf("result %+v", res)
			}
			if !strings.Contains(errOut, "copying nodes") {
				t.Errorf("no progress line on stderr: %q", errOut)
			}
			// Again: the target now holds data.
			_, _, err = runCLIErr("migrate", "--from", from, "--to", to)
			if exitCode(err) != 1 || !strings.Contains(err.Error(), "not empty") || !strings.Contains(err.Error(), "users (3 rows)") {
				t.Errorf("migrate into a populated target: %v (exit %d)", err, exitCode(err))
			}
		})
	}
	t.Run("human", func(t *testing.T) {
		out, _, err := runCLIErr("migrate", "--from", from, "--to", filepath.Join(t.TempDir(), "human.db"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"TABLE", "nodes", "verified", "secrets.key"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
	for _, args := range [][]string{
		{"migrate", "--from", from},
		{"migrate", "--to", "x.db"},
		{"migrate", "--from", "mysql://h/db", "--to", "x.db"},
		{"migrate", "--from", from, "--to", "x.db", "extra"},
	} {
		if _, _, err := runCLIErr(args...); exitCode(err) != 2 {
			t.Errorf("%v: %v (exit %d), want exit 2", args, err, exitCode(err))
		}
	}
}

func TestBackupRestoreCLI(t *testing.T) {
	dir := populatedStateDir(t)
	file := filepath.Join(t.TempDir(), "warren-backup.db")
	out, _, err := runCLIErr("backup", "--state-dir", dir, "--to", file, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var res storecopy.FileResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Bytes == 0 || res.SchemaVersion != store.SchemaVersion() {
		t.Fatalf("backup --json: %q, %v", out, err)
	}
	if _, _, err := runCLIErr("backup", "--state-dir", dir, "--to", file); exitCode(err) != 1 || !strings.Contains(err.Error(), "exists") {
		t.Errorf("backup over a file: %v", err)
	}
	target := "sqlite://" + filepath.Join(t.TempDir(), "restored.db")
	out, _, err = runCLIErr("restore", "--from", file, "--store", target)
	if err != nil || !strings.Contains(out, "Restored") {
		t.Fatalf("restore: %q, %v", out, err)
	}
	if _, _, err := runCLIErr("restore", "--from", file, "--store", target); exitCode(err) != 1 || !strings.Contains(err.Error(), "--force") {
		t.Errorf("restore over data: %v", err)
	}
	if _, _, err := runCLIErr("restore", "--from", file, "--store", target, "--force"); err != nil {
		t.Errorf("restore --force: %v", err)
	}
	st, err := store.OpenURL(context.Background(), target, store.Options{})
	must(t, err)
	users, err := st.ListUsers(context.Background())
	st.Close()
	if err != nil || len(users) != 3 {
		t.Errorf("restored store: %d users, %v", len(users), err)
	}

	pg := "postgres://warren:s3cret@db.example.com/warren"
	for _, args := range [][]string{{"backup", "--store", pg, "--to", "/tmp/x.dump"}, {"restore", "--from", "/tmp/x.dump", "--store", pg}} {
		_, _, err := runCLIErr(args...)
		if exitCode(err) != 1 || !strings.Contains(err.Error(), "pg_") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%v: %v", args[0], err)
		}
	}
	for _, args := range [][]string{{"backup", "--state-dir", dir}, {"restore", "--store", target}} {
		if _, _, err := runCLIErr(args...); exitCode(err) != 2 {
			t.Errorf("%v: %v (exit %d), want exit 2", args, err, exitCode(err))
		}
	}
}
