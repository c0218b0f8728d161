package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator"
	jit "github.com/warrenmesh/warren/coordinator/access"
	"github.com/warrenmesh/warren/coordinator/export"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/wire"
)

// accessPolicy: eng asks sre for the database for up to 4h with a
// reason; oncall may break the glass.
const accessPolicy = `{
	"groups": {"group:eng": ["ann@example.com"], "group:sre": ["sam@example.com"], "group:oncall": ["olive@example.com"]},
	"tagOwners": {"tag:prod-db": ["sam@example.com"]},
	"acls": [{"action": "accept", "src": ["group:sre"], "dst": ["tag:prod-db:*"]}],
	"access": [
		{"src": ["group:eng"], "dst": ["tag:prod-db:5432"], "approvers": ["group:sre"], "maxDuration": "4h", "reason": "required"},
		{"src": ["group:oncall"], "dst": ["tag:prod-db:*"], "approvers": [], "selfApprove": true, "maxDuration": "1h"},
	],
}`

// startAccessCoordinator runs a coordinator with accessPolicy, users ann
// (eng), sam (sre) and olive (oncall), a device each ("ann", "sam",
// "olive") and the tagged database, seeded in its store before it starts
// as if they had registered; cfg's StateDir is filled in.
func startAccessCoordinator(t *testing.T, cfg coordinator.Config) (*coordinator.Coordinator, string, map[string]store.NodeID) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "policy.hujson"), []byte(accessPolicy), 0o600))
	st, err := store.Open(ctx, filepath.Join(dir, "warren.db"), nil)
	must(t, err)
	nodes := map[string]store.NodeID{}
	for i, name := range []string{"ann", "sam", "olive", "db"} {
		owner := name
		if name == "db" {
			owner = "sam"
		}
		u, err := st.GetUserByName(ctx, owner+"@example.com")
		if err != nil {
			u, err = st.CreateUser(ctx, store.User{Name: owner + "@example.com", Role: store.RoleMember, Created: time.Now()})
			must(t, err)
		}
		n := store.Node{MachineKey: key.NewMachine().Public(), NodeKey: key.NewNode().Public(), DiscoKey: key.NewDisco().Public(),
			UserID: u.ID, Hostname: name, Created: time.Now(), IPv4: netip.AddrFrom4([4]byte{100, 64, 0, byte(i + 1)})}
		if name == "db" {
			n.Tags = []string{"tag:prod-db"}
		}
		n, err = st.CreateNode(ctx, n)
		must(t, err)
		nodes[name] = n.ID
	}
	must(t, st.Close())
	cfg.StateDir = dir
	c, err := coordinator.New(ctx, cfg)
	must(t, err)
	ln, err := coordinator.ListenAdminSocket(filepath.Join(dir, "admin.sock"))
	must(t, err)
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.ServeAdmin(sctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
		c.Close()
	})
	return c, dir, nodes
}

// TestAccessCLI: an admin lists, approves (shortened), denies, revokes
// and reads the history with warren-coordinator access; refusals exit
// non-zero with the service's message.
func TestAccessCLI(t *testing.T) {
	c, dir, nodes := startAccessCoordinator(t, coordinator.Config{})
	ctx := context.Background()
	sd := "--state-dir=" + dir
	req := func(from, dst string, d time.Duration, reason string) wire.AccessRequest {
		t.Helper()
		r, err := c.Access().Request(ctx, jit.Caller{Node: nodes[from]}, dst, d, reason)
		must(t, err)
		return r
	}
	a := req("ann", "tag:prod-db:5432", 2*time.Hour, "INC-4211")
	b := req("ann", "tag:prod-db:5432", time.Hour, "INC-4212")

	out := mustCLI(t, "access", "list", "--pending", sd)
	if !strings.HasPrefix(out, "ID") || !strings.Contains(out, a.ID) || !strings.Contains(out, "INC-4211") || !strings.Contains(out, "tag:prod-db:5432") {
		t.Fatalf("access list --pending:\n%s", out)
	}
	var got []wire.AccessRequest
	must(t, json.Unmarshal([]byte(mustCLI(t, "access", "approve", a.ID, "--for", "90m", "--json", sd)), &got))
	if len(got) != 1 || got[0].State != wire.AccessActive || got[0].Duration != 90*time.Minute || !strings.HasPrefix(got[0].Approver, "local:uid=") {
		t.Fatalf("approved: %+v", got)
	}
	if gs := c.Engine().Grants(); len(gs) != 1 || gs[0].ID != a.ID || gs[0].Node != wire.NodeID(nodes["ann"]) {
		t.Fatalf("grants in force: %+v", gs)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"access", "deny", b.ID}, "reason"},
		{[]string{"access", "approve", a.ID}, "not pending"},
		{[]string{"access", "approve", "ar-99"}, "no access request ar-99"},
		{[]string{"access", "approve", b.ID, "--for", "3h"}, "never lengthen"},
		{[]string{"access", "history", "--state", "bogus"}, "want pending"},
		{[]string{"access", "bogus"}, "unknown command"},
	} {
		_, err := runCLI(t, append(tc.args, sd)...)
		if exitCode(err) != 1 || !strings.Contains(err.Error(), tc.msg) {
			t.Fatalf("%v: %v (exit %d), want exit 1 saying %q", tc.args, err, exitCode(err), tc.msg)
		}
	}
	mustCLI(t, "access", "deny", b.ID, "--reason", "use the replica", sd)
	mustCLI(t, "access", "revoke", a.ID, "--reason", "done", sd)
	if gs := c.Engine().Grants(); len(gs) != 0 {
		t.Fatalf("grants after revoke: %+v", gs)
	}
	must(t, json.Unmarshal([]byte(mustCLI(t, "access", "history", "--json", "--user", "ann@example.com", "--since", "1h", sd)), &got))
	if len(got) != 2 || got[0].ID != b.ID || got[0].State != wire.AccessDenied || got[0].Note != "use the replica" ||
		got[1].State != wire.AccessRevoked {
		t.Fatalf("history: %+v", got)
	}
	if out := mustCLI(t, "access", "history", "--user", "nobody@example.com", "--json", sd); strings.TrimSpace(out) != "[]" {
		t.Fatalf("history of nobody: %q", out)
	}
	// A grant whose access rule leaves the policy ends at once.
	e := req("ann", "tag:prod-db:5432", time.Hour, "INC-4213")
	mustCLI(t, "access", "approve", e.ID, sd)
	if len(c.Engine().Grants()) != 1 {
		t.Fatal("approved grant not in force")
	}
	file := filepath.Join(t.TempDir(), "policy.hujson")
	must(t, os.WriteFile(file, []byte(strings.Replace(accessPolicy,
		`{"src": ["group:eng"], "dst": ["tag:prod-db:5432"], "approvers": ["group:sre"], "maxDuration": "4h", "reason": "required"},`, "", 1)), 0o600))
	mustCLI(t, "policy", "apply", file, sd)
	if gs := c.Engine().Grants(); len(gs) != 0 {
		t.Fatalf("grants after the rule left the policy: %+v", gs)
	}
	must(t, json.Unmarshal([]byte(mustCLI(t, "access", "history", "--json", "--state", "revoked", sd)), &got))
	if len(got) != 2 || got[0].ID != e.ID || got[0].Note != "access rule removed from the policy" {
		t.Fatalf("revoked: %+v", got)
	}
	events, err := c.Store().ListAudit(ctx, store.AuditFilter{Action: "access.approve"})
	must(t, err)
	if len(events) < 1 || !strings.Contains(events[len(events)-1].Detail, `"asAdmin":true`) {
		t.Fatalf("approve events %+v", events)
	}
}

// TestAccessWebhook: new requests reach --access-webhook signed with
// the secret, with Slack's text field naming the commands, retried while
// the receiver is down; refused requests and other events are not sent.
func TestAccessWebhook(t *testing.T) {
	secret := []byte("s3cret-for-the-hook")
	secretFile := filepath.Join(t.TempDir(), "hook.secret")
	must(t, os.WriteFile(secretFile, append(secret, '\n'), 0o600))
	var mu sync.Mutex
	down, attempts := true, 0
	bodies := make(chan []byte, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		attempts++
		isDown := down
		mu.Unlock()
		if isDown {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		if !export.Verify(secret, body, r.Header.Get(export.SignatureHeader)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			t.Errorf("bad signature %q", r.Header.Get(export.SignatureHeader))
			return
		}
		bodies <- body
	}))
	defer srv.Close()
	c, _, nodes := startAccessCoordinator(t, coordinator.Config{AccessWebhook: srv.URL + "/hook", AccessWebhookSecretFile: secretFile})
	ctx := context.Background()
	// A refusal (no reason) is audited but not announced.
	if _, err := c.Access().Request(ctx, jit.Caller{Node: nodes["ann"]}, "tag:prod-db:5432", time.Hour, ""); jit.Code(err) != wire.AccessInvalid {
		t.Fatalf("request without a reason: %v", err)
	}
	r, err := c.Access().Request(ctx, jit.Caller{Node: nodes["ann"]}, "tag:prod-db:5432", 2*time.Hour, "INC-4211")
	must(t, err)
	// Wait for a failed delivery, then let the receiver come up.
	poll.UntilTrue(t, 30*time.Second, "a delivery to the webhook while it is down", func() bool {
		mu.Lock()
		defer mu.Unlock()
		down = attempts == 0
		return !down
	})
	var body []byte
	select {
	case body = <-bodies:
	case <-time.After(30 * time.Second):
		t.Fatal("the webhook was not retried in 30s")
	}
	mu.Lock()
	if attempts < 2 {
		t.Errorf("delivered in %d attempts; the first, while down, must have failed", attempts)
	}
	mu.Unlock()
	var msg struct {
		Text   string         `json:"text"`
		Events []export.Event `json:"events"`
	}
	must(t, json.Unmarshal(body, &msg))
	for _, want := range []string{"ann@example.com requests tag:prod-db:5432 for 2h", "INC-4211", "warren access approve " + r.ID, "warren access deny " + r.ID} {
		if !strings.Contains(msg.Text, want) {
			t.Fatalf("text %q lacks %q", msg.Text, want)
		}
	}
	if len(msg.Events) != 1 || msg.Events[0].Event.Action != "access.request" || msg.Events[0].Warren.Outcome != "ok" {
		t.Fatalf("events %+v", msg.Events)
	}
	var d map[string]any
	must(t, json.Unmarshal(msg.Events[0].Warren.Detail, &d))
	if d["id"] != r.ID || d["requester"] != "ann@example.com" || d["destination"] != "tag:prod-db:5432" || d["reason"] != "INC-4211" {
		t.Fatalf("detail %v", d)
	}
}
