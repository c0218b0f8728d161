package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/api"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
)

// addNodes writes nodes with these hostnames, owned by user, to the
// coordinator's database as registrations would.
func addNodes(t *testing.T, dir string, user int64, hostnames ...string) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "warren.db"), nil)
	must(t, err)
	defer st.Close()
	for _, h := range hostnames {
		_, err := st.CreateNode(ctx, store.Node{MachineKey: key.NewMachine().Public(), NodeKey: key.NewNode().Public(),
			DiscoKey: key.NewDisco().Public(), UserID: store.UserID(user), Hostname: h})
		must(t, err)
	}
}

func auditActions(t *testing.T, sd string) string {
	t.Helper()
	var events []api.AuditEvent
	must(t, json.Unmarshal([]byte(mustCLI(t, "audit", "--json", sd)), &events))
	var b strings.Builder
	for _, e := range events {
		b.WriteString(e.Action + "/" + e.Outcome + " ")
	}
	return b.String()
}

// TestUsersSetRole: users set-role makes a user an admin or a member, with
// an audit event; anything else is refused.
func TestUsersSetRole(t *testing.T) {
	dir := startCoordinator(t)
	sd := "--state-dir=" + dir
	mustCLI(t, "users", "create", "bob@example.com", sd)

	var u api.User
	must(t, json.Unmarshal([]byte(mustCLI(t, "users", "set-role", "bob@example.com", "admin", "--json", sd)), &u))
	if u.Role != "admin" {
		t.Fatalf("after set-role admin: %+v", u)
	}
	if out := mustCLI(t, "users", "set-role", sd, "bob@example.com", "member"); !strings.Contains(out, "member") || !strings.HasPrefix(out, "ID") {
		t.Fatalf("set-role member printed:\n%s", out)
	}
	var users []api.User
	must(t, json.Unmarshal([]byte(mustCLI(t, "users", "list", "--json", sd)), &users))
	if users[0].Role != "member" {
		t.Fatalf("users = %+v", users)
	}
	for _, bad := range [][]string{
		{"users", "set-role", "bob@example.com", "root", sd},
		{"users", "set-role", "nobody@example.com", "admin", sd},
		{"users", "set-role", "bob@example.com", sd},
	} {
		if _, err := runCLI(t, bad...); err == nil {
			t.Errorf("%v succeeded", bad)
		}
	}
	if a := auditActions(t, sd); strings.Count(a, "user.role/ok") != 2 {
		t.Fatalf("audit: %s", a)
	}
}

// TestNodesRename: nodes rename gives a node a DNS label no other node
// has, with an audit event.
func TestNodesRename(t *testing.T) {
	dir := startCoordinator(t)
	sd := "--state-dir=" + dir
	mustCLI(t, "users", "create", "ann@example.com", sd)
	addNodes(t, dir, 1, "Ann's MacBook", "db-host")

	var n api.Node
	must(t, json.Unmarshal([]byte(mustCLI(t, "nodes", "rename", "1", "laptop", "--json", sd)), &n))
	if n.Name != "laptop" || n.Hostname != "Ann's MacBook" {
		t.Fatalf("after rename: %+v", n)
	}
	if out := mustCLI(t, "nodes", "rename", "1", "Work-Laptop", sd); !strings.Contains(out, "work-laptop") {
		t.Fatalf("rename printed:\n%s", out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"2", "work-laptop"}, "already called"},
		{[]string{"2", "db_1"}, "not a valid node name"},
		{[]string{"2", "db.example.com"}, "not a valid node name"},
		{[]string{"2", strings.Repeat("a", 64)}, "not a valid node name"},
		{[]string{"9", "spare"}, "not found"},
		{[]string{"2"}, "usage"},
	} {
		_, err := runCLI(t, append(append([]string{"nodes", "rename"}, tc.args...), sd)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("rename %v: %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
	if out := mustCLI(t, "nodes", "list", sd); !strings.Contains(out, "work-laptop") || !strings.Contains(out, "db-host") {
		t.Fatalf("nodes list:\n%s", out)
	}
	// The netmap engine knows the node by its new name.
	var r api.ExplainResponse
	out, _ := runCLI(t, "policy", "explain", "--json", "work-laptop", "100.64.0.9:22", sd)
	if err := json.Unmarshal([]byte(out), &r); err != nil || !strings.HasPrefix(r.Src, "node work-laptop") {
		t.Fatalf("explain by the new name: %v\n%s", err, out)
	}
	if a := auditActions(t, sd); strings.Count(a, "node.rename/ok") != 2 || strings.Count(a, "node.rename/denied") != 5 {
		t.Fatalf("audit: %s", a)
	}
}

// TestKeysListNamesAndDefaultExpiry: keys list shows user names, and a
// single-use key without --ttl expires in DefaultSingleUseKeyTTL while a
// reusable one does not expire.
func TestKeysListNamesAndDefaultExpiry(t *testing.T) {
	dir := startCoordinator(t)
	sd := "--state-dir=" + dir
	mustCLI(t, "users", "create", "bob@example.com", sd)
	mustCLI(t, "users", "create", "carol@example.com", sd)

	before := time.Now()
	out := mustCLI(t, "keys", "create", "--user", "bob@example.com", sd)
	if !strings.Contains(out, "single-use, expires") {
		t.Fatalf("keys create printed:\n%s", out)
	}
	mustCLI(t, "keys", "create", "--user", "carol@example.com", "--reusable", sd)
	mustCLI(t, "keys", "create", "--user", "carol@example.com", "--ttl", "48h", sd)
	after := time.Now()

	var keys []api.AuthKey
	must(t, json.Unmarshal([]byte(mustCLI(t, "keys", "list", "--json", sd)), &keys))
	if len(keys) != 3 {
		t.Fatalf("keys = %+v", keys)
	}
	for i, tc := range []struct {
		user string
		ttl  time.Duration // 0: never expires
	}{
		{"bob@example.com", time.Hour},
		{"carol@example.com", 0},
		{"carol@example.com", 48 * time.Hour},
	} {
		k := keys[i]
		if k.User != tc.user {
			t.Errorf("key %d: user %q, want %q", k.ID, k.User, tc.user)
		}
		switch {
		case tc.ttl == 0 && !k.Expiration.IsZero():
			t.Errorf("key %d expires %v, want never", k.ID, k.Expiration)
		case tc.ttl != 0 && (k.Expiration.Before(before.Add(tc.ttl).Truncate(time.Second)) || k.Expiration.After(after.Add(tc.ttl))):
			t.Errorf("key %d expires %v, want %v after its creation", k.ID, k.Expiration, tc.ttl)
		}
	}
	table := mustCLI(t, "keys", "list", sd)
	if !strings.Contains(table, "bob@example.com") || !strings.Contains(table, "carol@example.com") || !strings.Contains(table, "CREATED BY") {
		t.Fatalf("keys list:\n%s", table)
	}
	mustCLI(t, "apikeys", "create", "--user", "bob@example.com", sd)
	if table := mustCLI(t, "apikeys", "list", sd); !strings.Contains(table, "bob@example.com") {
		t.Fatalf("apikeys list:\n%s", table)
	}
}
