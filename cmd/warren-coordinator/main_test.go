package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/api"
)

// startCoordinator runs a coordinator with its admin socket for one test.
func startCoordinator(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
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
	return dir
}

// cli runs one command and returns its stdout.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	return out.String(), err
}

func TestCLI(t *testing.T) {
	dir := startCoordinator(t)
	sd := "--state-dir=" + dir
	mustCLI := func(args ...string) string {
		t.Helper()
		out, err := runCLI(t, args...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return out
	}
	mustCLI("users", "create", "ann@example.com", "--admin", "--group", "eng", sd)
	mustCLI("users", "create", sd, "bob@example.com")

	var users []api.User
	if err := json.Unmarshal([]byte(mustCLI("users", "list", "--json", sd)), &users); err != nil {
		t.Fatal(err)
	}
	if len(users) != 2 || users[0].Role != "admin" || users[0].Groups[0] != "eng" || users[1].Role != "member" {
		t.Fatalf("users = %+v", users)
	}
	table := mustCLI("users", "list", sd)
	if !strings.Contains(table, "ann@example.com") || !strings.HasPrefix(table, "ID") {
		t.Fatalf("table:\n%s", table)
	}

	out := mustCLI("keys", "create", "--user", "bob@example.com", "--reusable", "--tag", "tag:ci", "--ttl", "1h", sd)
	if !strings.Contains(out, "wpk_") {
		t.Fatalf("key create printed %q", out)
	}
	var keys []api.AuthKey
	if err := json.Unmarshal([]byte(mustCLI("keys", "list", "--json", sd)), &keys); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || !keys[0].Reusable || keys[0].Tags[0] != "tag:ci" || keys[0].Key != "" || keys[0].Expiration.IsZero() {
		t.Fatalf("keys = %+v", keys)
	}
	mustCLI("keys", "revoke", "1", sd)
	if err := json.Unmarshal([]byte(mustCLI("keys", "list", "--json", sd)), &keys); err != nil || !keys[0].Revoked {
		t.Fatalf("after revoke: %+v, %v", keys, err)
	}
	mustCLI("users", "disable", "bob@example.com", sd)

	var events []api.AuditEvent
	if err := json.Unmarshal([]byte(mustCLI("audit", "--json", sd)), &events); err != nil {
		t.Fatal(err)
	}
	if len(events) != 5 || events[0].Action != "user.disable" {
		t.Fatalf("audit = %+v", events)
	}
	if plain := out[strings.Index(out, "wpk_"):][:36]; strings.Contains(mustCLI("audit", sd), plain) {
		t.Fatal("the audit log shows a plaintext pre-auth key")
	}

	for _, bad := range [][]string{
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
