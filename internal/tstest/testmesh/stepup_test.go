package testmesh

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/internal/tstest/oidctest"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/controlclient"
	"github.com/warrenmesh/warren/node/localapi"
)

// stepUpPolicy: group:eng may request tag:prod-db:5432 with MFA no older
// than 15 minutes, approved by group:sre; an ACL gives group:eng
// tag:prod-db:6000 under the same MFA condition.
const stepUpPolicy = `{
	"groups": {"group:eng": [], "group:sre": ["sam@example.com"]},
	"tagOwners": {"tag:prod-db": ["autogroup:admin"]},
	"acls": [{"action": "accept", "src": ["group:eng"], "dst": ["tag:prod-db:6000"], "mfa": "15m"}],
	"access": [
		{"src": ["group:eng"], "dst": ["tag:prod-db:5432"], "approvers": ["group:sre"], "maxDuration": "4h", "mfa": "15m"},
	],
}`

// stepUpUsers: ann signs in with a password only (until a test gives her
// a second factor); bob is another engineer.
var stepUpUsers = []oidctest.User{
	{Subject: "sub-ann", Username: "ann", Email: "ann@example.com", EmailVerified: true, Groups: []string{"eng"}},
	{Subject: "sub-bob", Username: "bob", Email: "bob@example.com", EmailVerified: true, Groups: []string{"eng"}},
}

// TestJITAccessStepUp: a request under a rule with "mfa": "15m" from a
// user whose MFA is older sends the user through sign-in at the
// in-process OpenID Provider, then is filed, without re-keying or
// reconnecting the node. A sign-in by someone else, or one without a
// second factor, files nothing; warren login --mfa (op step-up) refreshes
// MFA without a request.
func TestJITAccessStepUp(t *testing.T) {
	m := New(t, Options{Policy: stepUpPolicy, OIDC: &OIDCOptions{Users: stepUpUsers}})
	ann := m.Up("ann-laptop", NodeOptions{}, m.AsOIDCUser("ann"))
	self := ann.Netmap().Self
	request := wire.AccessCall{Op: wire.AccessOpRequest, Dst: "tag:prod-db:5432", For: time.Hour, Reason: "INC-4211"}

	// Someone else signs in at ann's step-up URL: refused, nothing filed.
	r, urls, err := ann.Access(request, m.AsOIDCUser("bob"))
	if err != nil || len(urls) != 1 || r.Code != wire.AccessForbidden {
		t.Fatalf("step-up signed in as bob: %+v, URLs %q, %v", r, urls, err)
	}
	if len(auditWith(t, m, "login.step-up", "denied", "ann")) != 1 {
		t.Error("the wrong user's step-up was not audited as denied")
	}
	// Ann signs in without a second factor: still not fresh.
	r, _, err = ann.Access(request, m.AsOIDCUser("ann"))
	if err != nil || r.Code != wire.AccessMFARequired || !strings.Contains(r.Message, "second factor") {
		t.Fatalf("step-up without MFA: %+v, %v", r, err)
	}
	if l, _, _ := ann.Access(wire.AccessCall{Op: wire.AccessOpList}, nil); l == nil || len(l.Requests) != 0 {
		t.Fatalf("requests filed by failed step-ups: %+v", l)
	}

	// With a second factor the request is filed after the sign-in.
	m.OP.SetClaims("sub-ann", []string{"pwd", "otp"}, []string{"eng"})
	start := time.Now()
	r, urls, err = ann.Access(request, m.AsOIDCUser("ann"))
	if err != nil || len(urls) != 1 || r.Code != "" || len(r.Requests) != 1 || r.Requests[0].State != wire.AccessPending {
		t.Fatalf("step-up with MFA: %+v, URLs %q, %v", r, urls, err)
	}
	if u := userNamed(t, m, "ann@example.com"); u.MFAAt.Before(start) {
		t.Fatalf("ann's MFA time %v not refreshed", u.MFAAt)
	}
	if ann.Client.Sessions() != 1 || ann.Netmap().Self.ID != self.ID || ann.Netmap().Self.NodeKey != self.NodeKey {
		t.Fatal("the step-up re-keyed or reconnected the node")
	}
	// MFA fresh now: the next request needs no sign-in.
	r, urls, err = ann.Access(wire.AccessCall{Op: wire.AccessOpRequest, Dst: "tag:prod-db:5432", For: time.Hour}, nil)
	if err != nil || len(urls) != 0 || r.Code != "" {
		t.Fatalf("request with fresh MFA: %+v, URLs %q, %v", r, urls, err)
	}

	// warren login --mfa: a step-up on its own.
	r, urls, err = ann.Access(wire.AccessCall{Op: wire.AccessOpStepUp}, m.AsOIDCUser("ann"))
	if err != nil || len(urls) != 1 || r.Code != "" {
		t.Fatalf("login --mfa: %+v, URLs %q, %v", r, urls, err)
	}
	if len(auditWith(t, m, "login.step-up", "ok", "ann-laptop")) != 2 {
		t.Error("want two successful login.step-up events")
	}
}

// TestStaleMFAInStatus: a rule the device fails only because its user's
// MFA is stale shows in warren status (the daemon's status), naming the
// rule and how fresh MFA must be; after warren login --mfa it is gone.
func TestStaleMFAInStatus(t *testing.T) {
	m := New(t, Options{Policy: stepUpPolicy, OIDC: &OIDCOptions{Users: stepUpUsers}})
	ops := m.User("ops@example.com")
	db := m.AddNode("db", NodeOptions{Tags: []string{"tag:prod-db"},
		AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: ops.ID, Tags: []string{"tag:prod-db"}})})
	must(t, db.WaitFor(wait, func(nm *controlclient.Netmap) bool { return nm != nil }))
	// A tagged server has no user to step up.
	if r, urls, err := db.Access(wire.AccessCall{Op: wire.AccessOpStepUp}, nil); err != nil || r.Code != wire.AccessForbidden || len(urls) != 0 {
		t.Fatalf("step-up on a tagged node: %+v, URLs %q, %v", r, urls, err)
	}
	d := m.AddDaemon("ann-laptop")
	if _, _, err := d.Up(localapi.UpRequest{}, m.AsOIDCUser("ann")); err != nil {
		t.Fatal(err)
	}
	mfa := func() []localapi.MFADenial {
		if p := d.Status(context.Background()).Posture; p != nil {
			return p.MFA
		}
		return nil
	}
	poll.UntilTrue(t, wait, "the stale-MFA rule in warren status", func() bool { return len(mfa()) == 1 })
	got := mfa()[0]
	if got.Destination != "tag:prod-db:6000" || got.MaxAge != 15*time.Minute || got.Rule != "acls[0]" {
		t.Fatalf("MFA denial %+v", got)
	}
	if s := got.String(); s != "tag:prod-db:6000 needs MFA within 15m (rule acls[0]): run warren login --mfa" {
		t.Fatalf("status line %q", s)
	}

	m.OP.SetClaims("sub-ann", []string{"pwd", "otp"}, []string{"eng"})
	var urls []string
	rep, err := d.Access(context.Background(), localapi.AccessCall{Op: wire.AccessOpStepUp}, func(u string) {
		urls = append(urls, u)
		if status, page := m.AsOIDCUser("ann")(u); status != http.StatusOK {
			t.Errorf("step-up sign-in: %d %s", status, page)
		}
	})
	if err != nil || rep.Code != "" || len(urls) != 1 {
		t.Fatalf("login --mfa through the daemon: %+v, URLs %q, %v", rep, urls, err)
	}
	poll.UntilTrue(t, wait, "the MFA denial to clear", func() bool { return len(mfa()) == 0 })
}
