package coordinator_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/tstest/consoletest"
	"github.com/warrenmesh/warren/internal/wire"
)

// memberPolicy lets bob reach ann's devices on 22, and on 443 only from
// an encrypted disk; bob may ask for 5432, which carol approves.
const memberPolicy = `{
	"postures": {"posture:enc": ["node:diskEncrypted == true"]},
	"acls": [
		{"action": "accept", "src": ["bob@example.com"], "dst": ["ann@example.com:22"]},
		{"action": "accept", "src": ["bob@example.com"], "dst": ["ann@example.com:443"], "srcPosture": ["posture:enc"]},
	],
	"access": [
		{"src": ["bob@example.com"], "dst": ["ann@example.com:5432"], "approvers": ["carol@example.com"], "maxDuration": "4h"},
	],
}`

// memberMesh is a console coordinator with memberPolicy, bob's laptop
// (reporting an unencrypted disk), ann's laptop, and users root (admin),
// bob and carol (members).
type memberMesh struct {
	consoleUsers
	carol                consoletest.User
	bobLaptop, annLaptop store.Node
}

func newMemberMesh(t *testing.T) memberMesh {
	t.Helper()
	s := consoleWithUsers(t, coordinator.Config{})
	m := memberMesh{consoleUsers: s, carol: consoletest.NewUser(t, s.c.Registry(), "carol@example.com", store.RoleMember, false)}
	ctx := context.Background()
	if _, err := s.c.Policy().Apply(ctx, "test", []byte(memberPolicy)); err != nil {
		t.Fatal(err)
	}
	_, bobKey, err := s.c.Registry().CreateAuthKey(ctx, admin, registry.AuthKeyRequest{UserID: s.member.ID, Reusable: true, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	m.bobLaptop = registerNode(t, s.served, bobKey, "bob-laptop")
	m.annLaptop = registerNode(t, s.served, s.authKey, "ann-laptop")
	if err := s.c.Registry().ReportPosture(ctx, m.bobLaptop.ID, &wire.PostureReport{Attrs: map[string]wire.PostureValue{
		"node:os": {Value: "linux", CollectedAt: time.Now()}, "node:osVersion": {Value: "6.8", CollectedAt: time.Now()},
		"node:diskEncrypted": {Value: "false", CollectedAt: time.Now()},
	}}, "127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	return m
}

// registerNode registers a device with authKey through the registry, as
// the control channel does.
func registerNode(t *testing.T, s *served, authKey, hostname string) store.Node {
	t.Helper()
	n, err := s.c.Registry().Register(context.Background(), key.NewMachine().Public(), &wire.RegisterRequest{
		Version: wire.ProtocolVersion, NodeKey: newNodeKey(), DiscoKey: newDiscoKey(), Hostname: hostname, OS: "linux", AuthKey: authKey,
	}, "127.0.0.1:1")
	if err != nil {
		t.Fatalf("register %s: %v", hostname, err)
	}
	return n
}

// TestConsoleMemberPages checks what each person's own pages show: their
// own devices only (admins too), with addresses, OS, posture findings and
// how to fix them, and what each device can reach by which rule.
func TestConsoleMemberPages(t *testing.T) {
	m := newMemberMesh(t)
	bob := consoletest.SignIn(t, m.url, m.member)
	root := consoletest.SignIn(t, m.url, m.admin)
	for _, tc := range []struct {
		name     string
		b        *consoletest.Browser
		path     string
		want     []string
		mustNot  []string
		wantCode int
	}{
		{"bob's devices", bob, "/admin/me/devices", []string{"bob-laptop", m.bobLaptop.IPv4.String(), "linux 6.8", "offline",
			"ann@example.com:443", "node:diskEncrypted", "Turn on disk encryption"}, []string{"ann-laptop", m.annLaptop.IPv4.String()}, 200},
		{"bob's reach", bob, "/admin/me/reach", []string{"ann-laptop", m.annLaptop.IPv4.String() + "/32:22", "acls rule #1 (line 4)"},
			[]string{":443"}, 200},
		{"bob's home", bob, "/admin/", []string{"1 finding to fix"}, []string{"ann-laptop"}, 200},
		{"the admin's own devices", root, "/admin/me/devices", []string{"no devices yet"}, []string{"bob-laptop", "ann-laptop"}, 200},
		{"the admin's reach", root, "/admin/me/reach", []string{"no devices yet"}, []string{"bob-laptop", "ann-laptop"}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := tc.b.Get(t, tc.path)
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("%d, want %d", resp.StatusCode, tc.wantCode)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("missing %q in %s", w, body)
				}
			}
			for _, w := range tc.mustNot {
				if strings.Contains(body, w) {
					t.Errorf("shows %q", w)
				}
			}
		})
	}
}

// TestConsoleMemberAccessRequests files a request from the console for
// the member's own device, refuses one for somebody else's, lets the
// approver named by the policy approve it, and the requester cancel the
// grant; every step goes through the access service.
func TestConsoleMemberAccessRequests(t *testing.T) {
	m := newMemberMesh(t)
	bob := consoletest.SignIn(t, m.url, m.member)
	carol := consoletest.SignIn(t, m.url, m.carol)

	// Not for someone else's device: nothing filed.
	resp, body := bob.Post(t, "/admin/me/access", url.Values{"node": {fmt.Sprint(m.annLaptop.ID)},
		"dst": {"ann@example.com:5432"}, "duration": {"1h"}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Choose one of your own devices") {
		t.Fatalf("request for ann's device: %d", resp.StatusCode)
	}
	for _, tc := range []struct{ form url.Values }{
		{url.Values{"node": {"x"}, "dst": {"ann@example.com:5432"}, "duration": {"1h"}}},
		{url.Values{"node": {fmt.Sprint(m.bobLaptop.ID)}, "dst": {"ann@example.com:5432"}, "duration": {"forever"}}},
		{url.Values{"node": {fmt.Sprint(m.bobLaptop.ID)}, "dst": {""}, "duration": {"1h"}}},
	} {
		if resp, _ := bob.Post(t, "/admin/me/access", tc.form); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("form %v: %d, want 400", tc.form, resp.StatusCode)
		}
	}
	// Outside the policy's access rules: the service's refusal is shown.
	resp, body = bob.Post(t, "/admin/me/access", url.Values{"node": {fmt.Sprint(m.bobLaptop.ID)}, "dst": {"ann@example.com:6379"}, "duration": {"1h"}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, `class="error"`) {
		t.Fatalf("request outside the rules: %d %.300s", resp.StatusCode, body)
	}

	resp, body = bob.Post(t, "/admin/me/access", url.Values{"node": {fmt.Sprint(m.bobLaptop.ID)},
		"dst": {"ann@example.com:5432"}, "duration": {"1h"}, "reason": {"deploy"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Request filed") || !strings.Contains(body, "pending") {
		t.Fatalf("request: %d %.500s", resp.StatusCode, body)
	}
	reqs, err := m.c.Store().ListAccessRequests(context.Background(), store.AccessFilter{})
	if err != nil || len(reqs) != 1 || reqs[0].NodeID != m.bobLaptop.ID {
		t.Fatalf("requests stored: %+v, %v", reqs, err)
	}
	id := fmt.Sprintf("ar-%d", reqs[0].ID)

	// Bob may not approve his own; carol may.
	if resp, _ := bob.Post(t, "/admin/me/access/"+id+"/approve", nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("self-approval: %d", resp.StatusCode)
	}
	_, body = carol.Get(t, "/admin/me/access")
	if !strings.Contains(body, "Requests you may decide") || !strings.Contains(body, id) {
		t.Fatalf("carol's page does not offer %s: %.600s", id, body)
	}
	if resp, body := carol.Post(t, "/admin/me/access/"+id+"/approve", nil); resp.StatusCode != http.StatusOK || !strings.Contains(body, "Request approved") {
		t.Fatalf("approval: %d %.300s", resp.StatusCode, body)
	}
	_, body = bob.Get(t, "/admin/me/access")
	if !strings.Contains(body, "active") || !strings.Contains(body, "carol@example.com") {
		t.Fatalf("bob's page after the approval: %.600s", body)
	}
	if resp, body := bob.Post(t, "/admin/me/access/"+id+"/cancel", nil); resp.StatusCode != http.StatusOK || !strings.Contains(body, "cancelled") {
		t.Fatalf("cancel: %d %.300s", resp.StatusCode, body)
	}
	if n := auditCount(t, m.served, store.AuditFilter{Action: "access.approve", Actor: "user:carol@example.com"}); n != 1 {
		t.Fatalf("%d approvals audited with carol's identity", n)
	}
}
