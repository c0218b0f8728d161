package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/api"
	"github.com/warrenmesh/warren/coordinator/policyfile"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/cli"
	"github.com/warrenmesh/warren/internal/key"
)

// startCoordinator runs a coordinator with its admin socket for one test
// and returns its state directory.
func startCoordinator(t *testing.T) string {
	t.Helper()
	_, dir := startCoordinatorC(t)
	return dir
}

// startCoordinatorC is startCoordinator that also returns the coordinator.
func startCoordinatorC(t *testing.T) (*coordinator.Coordinator, string) {
	t.Helper()
	dir := t.TempDir()
	// The default policy, plus tag:ci for the keys the tests create.
	src := strings.Replace(policyfile.DefaultSource, `"tagOwners": {`, `"tagOwners": {"tag:ci": ["autogroup:admin"],`, 1)
	if err := os.WriteFile(filepath.Join(dir, "policy.hujson"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := coordinator.New(context.Background(), coordinator.Config{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "admin.sock")
	ln, err := coordinator.ListenAdminSocket(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.ServeAdmin(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
		c.Close()
	})
	return c, dir
}

// cli runs one command and returns its stdout.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	return out.String(), err
}

// mustCLI runs one command that must succeed and returns its stdout.
func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runCLI(t, args...)
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return out
}

func TestCLI(t *testing.T) {
	dir := startCoordinator(t)
	sd := "--state-dir=" + dir
	mustCLI(t, "users", "create", "ann@example.com", "--admin", "--group", "eng", sd)
	mustCLI(t, "users", "create", sd, "bob@example.com")

	var users []api.User
	if err := json.Unmarshal([]byte(mustCLI(t, "users", "list", "--json", sd)), &users); err != nil {
		t.Fatal(err)
	}
	if len(users) != 2 || users[0].Role != "admin" || users[0].Groups[0] != "eng" || users[1].Role != "member" {
		t.Fatalf("users = %+v", users)
	}
	table := mustCLI(t, "users", "list", sd)
	if !strings.Contains(table, "ann@example.com") || !strings.HasPrefix(table, "ID") {
		t.Fatalf("table:\n%s", table)
	}

	out := mustCLI(t, "keys", "create", "--user", "bob@example.com", "--reusable", "--tag", "tag:ci", "--ttl", "1h", sd)
	if !strings.Contains(out, "wpk_") {
		t.Fatalf("key create printed %q", out)
	}
	var keys []api.AuthKey
	if err := json.Unmarshal([]byte(mustCLI(t, "keys", "list", "--json", sd)), &keys); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || !keys[0].Reusable || keys[0].Tags[0] != "tag:ci" || keys[0].Key != "" || keys[0].Expiration.IsZero() {
		t.Fatalf("keys = %+v", keys)
	}
	mustCLI(t, "keys", "revoke", "1", sd)
	if err := json.Unmarshal([]byte(mustCLI(t, "keys", "list", "--json", sd)), &keys); err != nil || !keys[0].Revoked {
		t.Fatalf("after revoke: %+v, %v", keys, err)
	}
	mustCLI(t, "users", "disable", "bob@example.com", sd)

	var events []api.AuditEvent
	if err := json.Unmarshal([]byte(mustCLI(t, "audit", "--json", sd)), &events); err != nil {
		t.Fatal(err)
	}
	if len(events) != 6 || events[0].Action != "user.disable" || events[5].Action != "policy.apply" {
		t.Fatalf("audit = %+v", events)
	}
	if plain := out[strings.Index(out, "wpk_"):][:36]; strings.Contains(mustCLI(t, "audit", sd), plain) {
		t.Fatal("the audit log shows a plaintext pre-auth key")
	}

	// A node for nodes key-lifetime, written to the database as a
	// registration would (the registry reads it from there).
	st, err := store.Open(context.Background(), filepath.Join(dir, "warren.db"), nil)
	must(t, err)
	_, err = st.CreateNode(context.Background(), store.Node{MachineKey: key.NewMachine().Public(), NodeKey: key.NewNode().Public(),
		DiscoKey: key.NewDisco().Public(), UserID: store.UserID(users[0].ID), Hostname: "laptop"})
	must(t, err)
	must(t, st.Close())
	var node api.Node
	if err := json.Unmarshal([]byte(mustCLI(t, "nodes", "key-lifetime", "1", "720h", "--json", sd)), &node); err != nil ||
		node.KeyLifetime != "720h0m0s" || node.KeyExpiry.IsZero() {
		t.Fatalf("key-lifetime 720h: %+v, %v", node, err)
	}
	if out := mustCLI(t, "nodes", "key-lifetime", "1", "never", sd); !strings.Contains(out, "never") || !strings.HasPrefix(out, "ID") {
		t.Fatalf("key-lifetime never printed:\n%s", out)
	}
	if out := mustCLI(t, "nodes", "key-lifetime", sd, "1", "default"); !strings.Contains(out, "default") {
		t.Fatalf("key-lifetime default printed:\n%s", out)
	}

	for _, bad := range [][]string{
		{"nodes", "key-lifetime", "1", "forever", sd},
		{"nodes", "key-lifetime", "1", "10s", sd},
		{"nodes", "key-lifetime", "1", sd},
		{"nodes", "key-lifetime", "999", "720h", sd},
		{"users", "frobnicate", sd},
		{"nodes", "delete", "abc", sd},
		{"users", "create", sd},
		{"nodes", "delete", "999", sd},
		{"keys", "create", "--user", "nobody", sd},
		{"bogus"},
	} {
		if _, err := runCLI(t, bad...); err == nil {
			t.Errorf("%v succeeded", bad)
		}
	}
	if _, err := runCLI(t, "nodes", "list", "--state-dir", t.TempDir()); err == nil || !strings.Contains(err.Error(), "admin API") {
		t.Errorf("no coordinator: %v", err)
	}
}

const cliPolicy = `{
	"groups": {"group:eng": ["ann@example.com"]},
	"tagOwners": {"tag:db": ["autogroup:admin"]},
	"acls": [{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5432"]}],
	"tests": [{"src": "ann@example.com", "accept": ["tag:db:5432"], "deny": ["tag:db:22"]}],
}
`

func TestPolicyCLI(t *testing.T) {
	dir := startCoordinator(t)
	sd := "--state-dir=" + dir
	good := filepath.Join(t.TempDir(), "good.hujson")
	bad := filepath.Join(t.TempDir(), "bad.hujson")
	must(t, os.WriteFile(good, []byte(cliPolicy), 0o600))
	must(t, os.WriteFile(bad, []byte(strings.Replace(cliPolicy, "tag:db:5432\"]}],\n\t\"tests", "tag:db:99999\"]}],\n\t\"tests", 1)), 0o600))

	// Offline checks, as CI in a policy repository runs them.
	out, err := runCLI(t, "policy", "check", good)
	if err != nil || !strings.Contains(out, "ok, 1 rule(s), 1 test(s) passed") {
		t.Fatalf("check good: %v\n%s", err, out)
	}
	out, err = runCLI(t, "policy", "check", good, bad)
	if err == nil || !strings.Contains(out, bad+":4:") || !strings.Contains(out, "INVALID") {
		t.Fatalf("check bad: %v\n%s", err, out)
	}
	var checks []fileCheck
	out, _ = runCLI(t, "policy", "check", "--json", bad)
	if err := json.Unmarshal([]byte(out), &checks); err != nil || len(checks) != 1 || checks[0].OK || checks[0].Errors[0].Line != 4 {
		t.Fatalf("check --json: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "policy", "test", good); err != nil || !strings.Contains(out, "1 test(s) passed") {
		t.Fatalf("test: %v\n%s", err, out)
	}

	// Offline explain, allowed and denied with the reason.
	out, err = runCLI(t, "policy", "explain", "--file", good, "ann@example.com", "tag:db:5432")
	if err != nil || !strings.Contains(out, "ALLOWED") || !strings.Contains(out, "rule #1 (line 4)") {
		t.Fatalf("explain allowed: %v\n%s", err, out)
	}
	out, err = runCLI(t, "policy", "explain", "--file", good, "ann@example.com", "tag:db:22")
	if exitCode(err) != 1 || !strings.Contains(out, "DENIED") || !strings.Contains(out, "22") {
		t.Fatalf("explain denied: %v\n%s", err, out)
	}

	// Against the running coordinator: install the file, reload, show,
	// history, explain.
	must(t, os.WriteFile(filepath.Join(dir, "policy.hujson"), []byte(cliPolicy), 0o600))
	if out, err := runCLI(t, "policy", "reload", sd); err != nil || !strings.Contains(out, "version 2") {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	out, err = runCLI(t, "policy", "show", sd)
	if err != nil || !strings.Contains(out, "version 2") || !strings.Contains(out, "group:eng") {
		t.Fatalf("show: %v\n%s", err, out)
	}
	out, err = runCLI(t, "policy", "history", "--diff", sd)
	if err != nil || !strings.Contains(out, "+\t\"groups\"") {
		t.Fatalf("history: %v\n%s", err, out)
	}
	var r api.ExplainResponse
	out, err = runCLI(t, "policy", "explain", "--json", sd, "ann@example.com", "tag:db:5432")
	if err != nil || json.Unmarshal([]byte(out), &r) != nil || !r.Allowed || r.Rule.Line != 4 {
		t.Fatalf("explain via coordinator: %v\n%s", err, out)
	}
	// A broken file is refused by reload and shown as rejected.
	must(t, os.WriteFile(filepath.Join(dir, "policy.hujson"), []byte("{\"acls\": [}"), 0o600))
	if _, err := runCLI(t, "policy", "reload", sd); err == nil {
		t.Fatal("reload of a broken file succeeded")
	}
	if out, _ := runCLI(t, "policy", "show", sd); !strings.Contains(out, "REJECTED") || !strings.Contains(out, "version 2") {
		t.Fatalf("show after a rejected file:\n%s", out)
	}
}

// exitCode is the exit status warren-coordinator ends with after err.
func exitCode(err error) int {
	var ee *cli.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.Code
	}
	return 1
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
