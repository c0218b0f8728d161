package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/coordinator/api"
)

const groupsPolicy = `{
	"groups": {"group:eng": ["ann@example.com", "carol@example.com"], "group:ops": []},
	"tagOwners": {"tag:db": ["autogroup:admin"]},
	"acls": [
		{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5432"]},
		{"action": "accept", "src": ["group:ops"], "dst": ["tag:db:22"]},
	],
}
`

// TestEffectiveGroups: users list and policy explain show the groups a user
// is in under the policy, from the policy file and from the user's own
// groups, with where each comes from; explain of a user counts the user's
// own groups (it used to count only the file's).
func TestEffectiveGroups(t *testing.T) {
	dir := startCoordinator(t)
	sd := "--state-dir=" + dir
	must(t, os.WriteFile(filepath.Join(dir, "policy.hujson"), []byte(groupsPolicy), 0o600))
	mustCLI(t, "policy", "reload", sd)
	mustCLI(t, "users", "create", "ann@example.com", sd)
	mustCLI(t, "users", "create", "bob@example.com", "--group", "ops", "--group", "sales", sd)
	mustCLI(t, "users", "create", "carol@example.com", "--group", "group:eng", sd)

	var users []api.User
	must(t, json.Unmarshal([]byte(mustCLI(t, "users", "list", "--json", sd)), &users))
	got := map[string]string{}
	for _, u := range users {
		got[u.Name] = groupsText(u.EffectiveGroups)
	}
	want := map[string]string{
		"ann@example.com":   "group:eng (policy)",
		"bob@example.com":   "group:ops (user)",
		"carol@example.com": "group:eng (policy+user)",
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: effective groups %q, want %q", name, got[name], w)
		}
	}
	table := mustCLI(t, "users", "list", sd)
	for _, w := range []string{"group:eng (policy)", "group:ops (user), sales (not in the policy)", "group:eng (policy+user)"} {
		if !strings.Contains(table, w) {
			t.Errorf("users list does not show %q:\n%s", w, table)
		}
	}

	for _, tc := range []struct {
		src, dst   string
		allowed    bool
		wantGroups string
	}{
		{"ann@example.com", "tag:db:5432", true, "group:eng (policy)"},
		{"ann@example.com", "tag:db:22", false, "group:eng (policy)"},
		{"bob@example.com", "tag:db:22", true, "group:ops (user)"},
		{"carol@example.com", "tag:db:5432", true, "group:eng (policy+user)"},
	} {
		var r api.ExplainResponse
		out, err := runCLI(t, "policy", "explain", "--json", tc.src, tc.dst, sd)
		if json.Unmarshal([]byte(out), &r) != nil || r.Allowed != tc.allowed || groupsText(r.SrcGroups) != tc.wantGroups {
			t.Errorf("explain %s %s: %v\n%s", tc.src, tc.dst, err, out)
		}
		out, _ = runCLI(t, "policy", "explain", tc.src, tc.dst, sd)
		if !strings.Contains(out, "source groups: "+tc.wantGroups) {
			t.Errorf("explain %s %s does not show the groups:\n%s", tc.src, tc.dst, out)
		}
	}

	// Offline, only the file's groups are known.
	file := filepath.Join(t.TempDir(), "policy.hujson")
	must(t, os.WriteFile(file, []byte(groupsPolicy), 0o600))
	if out, _ := runCLI(t, "policy", "explain", "--file", file, "carol@example.com", "tag:db:5432"); !strings.Contains(out, "source groups: group:eng (policy)\n") {
		t.Errorf("offline explain:\n%s", out)
	}
}

// TestExplainExitStatus: policy explain exits 0 when the answer is
// ALLOWED, 1 when it is DENIED, and 2 when there is no answer.
func TestExplainExitStatus(t *testing.T) {
	dir := startCoordinator(t)
	sd := "--state-dir=" + dir
	must(t, os.WriteFile(filepath.Join(dir, "policy.hujson"), []byte(groupsPolicy), 0o600))
	mustCLI(t, "policy", "reload", sd)
	file := filepath.Join(t.TempDir(), "policy.hujson")
	must(t, os.WriteFile(file, []byte(groupsPolicy), 0o600))
	broken := filepath.Join(t.TempDir(), "broken.hujson")
	must(t, os.WriteFile(broken, []byte(`{"acls": [}`), 0o600))

	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"allowed", []string{"ann@example.com", "tag:db:5432", sd}, 0},
		{"allowed json", []string{"ann@example.com", "tag:db:5432", "--json", sd}, 0},
		{"denied", []string{"ann@example.com", "tag:db:22", sd}, 1},
		{"denied json", []string{"ann@example.com", "tag:db:22", "--json", sd}, 1},
		{"allowed offline", []string{"--file", file, "ann@example.com", "tag:db:5432"}, 0},
		{"denied offline", []string{"--file", file, "ann@example.com", "tag:db:22"}, 1},
		{"bad port", []string{"ann@example.com", "tag:db:99999", sd}, 2},
		{"missing argument", []string{"ann@example.com", sd}, 2},
		{"unknown source", []string{"group:nope", "tag:db:22", sd}, 2},
		{"no coordinator", []string{"ann@example.com", "tag:db:22", "--state-dir", t.TempDir()}, 2},
		{"broken file", []string{"--file", broken, "ann@example.com", "tag:db:22"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCLI(t, append([]string{"policy", "explain"}, tc.args...)...)
			if got := exitCode(err); got != tc.want {
				t.Fatalf("exit status %d, want %d (%v)\n%s", got, tc.want, err, out)
			}
			if tc.want == 1 && err.Error() != "exit status 1" {
				t.Errorf("DENIED comes with an error message: %v", err)
			}
		})
	}
}

// TestPolicyApplyCLI: policy apply FILE puts the file in force as the
// caller's version (history names who), writes it to the coordinator's
// policy file, and applying the same file again adds no version.
func TestPolicyApplyCLI(t *testing.T) {
	c, dir := startCoordinatorC(t)
	sd := "--state-dir=" + dir
	file := filepath.Join(t.TempDir(), "policy.hujson")
	must(t, os.WriteFile(file, []byte(groupsPolicy), 0o600))

	out := mustCLI(t, "policy", "apply", file, sd)
	if !strings.Contains(out, "policy version 2 in force") {
		t.Fatalf("apply printed:\n%s", out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "policy.hujson"))
	if err != nil || string(b) != groupsPolicy {
		t.Fatalf("the coordinator's policy file: %v\n%s", err, b)
	}
	if out := mustCLI(t, "policy", "apply", file, sd); !strings.Contains(out, "unchanged") {
		t.Fatalf("second apply printed:\n%s", out)
	}
	var st api.ApplyPolicyResponse
	must(t, json.Unmarshal([]byte(mustCLI(t, "policy", "apply", "--json", file, sd)), &st))
	if st.Changed || st.Version != 2 {
		t.Fatalf("third apply: %+v", st)
	}
	// What the file watcher does once it sees the new file.
	must(t, c.Policy().Reload(context.Background(), ""))

	var vs []api.PolicyVersion
	must(t, json.Unmarshal([]byte(mustCLI(t, "policy", "history", "--json", sd)), &vs))
	if len(vs) != 2 {
		t.Fatalf("history has %d versions, want 2: %+v", len(vs), vs)
	}
	var events []api.AuditEvent
	must(t, json.Unmarshal([]byte(mustCLI(t, "audit", "--json", "--action", "policy.apply", sd)), &events))
	if vs[0].Author == "" || strings.HasPrefix(vs[0].Author, "file:") || vs[0].Author != events[0].Actor {
		t.Fatalf("the version's author %q is not the caller (%q)", vs[0].Author, events[0].Actor)
	}
	if hist := mustCLI(t, "policy", "history", sd); !strings.Contains(hist, vs[0].Author) {
		t.Fatalf("history:\n%s", hist)
	}

	broken := filepath.Join(t.TempDir(), "broken.hujson")
	must(t, os.WriteFile(broken, []byte("{\"acls\": [}"), 0o600))
	if _, err := runCLI(t, "policy", "apply", broken, sd); err == nil || !strings.Contains(err.Error(), "broken.hujson") {
		t.Fatalf("apply of a broken file: %v", err)
	}
	if _, err := runCLI(t, "policy", "apply", filepath.Join(t.TempDir(), "missing"), sd); err == nil {
		t.Fatal("apply of a missing file succeeded")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "policy.hujson")); string(b) != groupsPolicy {
		t.Fatalf("a refused apply changed the file:\n%s", b)
	}
}
