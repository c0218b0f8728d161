package access

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/alert"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/wire"
)

// TestApproveGrantExpire: an approval (shortened) puts a grant for the
// requesting device only in force until its expiry; at expiry the
// engine drops it and the service records access.expire.
func TestApproveGrantExpire(t *testing.T) {
	f := newFixture(t)
	r := f.request("ann", "tag:prod-db:5432", 2*time.Hour, "INC-4211")
	if len(f.engine.Grants()) != 0 {
		t.Fatal("a pending request is in force")
	}
	f.clock.Advance(time.Minute)
	got, err := f.svc.Approve(f.ctx, f.node("sam"), r.ID, 90*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := t0.Add(time.Minute + 90*time.Minute)
	if got.State != wire.AccessActive || got.Duration != 90*time.Minute || !got.Expires.Equal(want) || got.Approver != "user:sam@example.com" {
		t.Fatalf("approved: %+v", got)
	}
	g, ok := f.grants()[r.ID]
	if !ok || g.Node != wire.NodeID(f.nodes["ann"].ID) || g.Dst != "tag:prod-db:5432" || g.Rule != "access[0]" || !g.Until.Equal(want) {
		t.Fatalf("grant %+v (in force: %v), want ann's device until %v", g, ok, want)
	}
	for _, action := range []string{"access.approve", "access.grant"} {
		es := f.events(action)
		if len(es) != 1 {
			t.Fatalf("%d %s events", len(es), action)
		}
		d := detail(t, es[0])
		if d["approver"] != "user:sam@example.com" || d["requester"] != "ann@example.com" || d["duration"] != "1h30m0s" || d["nodeName"] != "ann" {
			t.Fatalf("%s detail %v", action, d)
		}
	}
	// Not yet due: nothing recorded.
	f.clock.Advance(89 * time.Minute)
	if err := f.svc.expireDue(f.ctx); err != nil || len(f.events("access.expire")) != 0 {
		t.Fatalf("expired early (%v)", err)
	}
	f.clock.Advance(time.Minute)
	if err := f.svc.expireDue(f.ctx); err != nil {
		t.Fatal(err)
	}
	if es := f.events("access.expire"); len(es) != 1 || es[0].Actor != "system" {
		t.Fatalf("expire events %+v", es)
	}
	if rs, _ := f.svc.List(f.ctx, f.node("ann"), false); rs[0].State != wire.AccessExpired || !rs[0].Ended.Equal(want) {
		t.Fatalf("after expiry %+v", rs[0])
	}
	if len(f.engine.Grants()) != 0 {
		t.Fatalf("grants after expiry: %+v", f.engine.Grants())
	}
}

// TestRunRecordsExpiry: Run wakes at the next expiry by itself.
func TestRunRecordsExpiry(t *testing.T) {
	f := newFixture(t)
	r := f.request("ann", "tag:prod-db:5432", time.Hour, "x")
	if _, err := f.svc.Approve(f.ctx, f.node("sam"), r.ID, 0); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(2 * time.Hour) // the grant is due: Run finds it at once
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	go func() { done <- f.svc.Run(ctx) }()
	poll.UntilTrue(t, 30*time.Second, "Run records the expiry", func() bool { return len(f.events("access.expire")) == 1 })
	cancel()
	<-done
}

// TestBreakGlass: under a selfApprove rule the request is in force at
// once, flagged, with alert.break-glass.
func TestBreakGlass(t *testing.T) {
	f := newFixture(t)
	r := f.request("olive", "tag:prod-db:22", 30*time.Minute, "db down")
	if r.State != wire.AccessActive || !r.BreakGlass || r.Approver != "user:olive@example.com" || r.Rule != "access[1]" {
		t.Fatalf("break-glass request %+v", r)
	}
	if _, ok := f.grants()[r.ID]; !ok {
		t.Fatal("break-glass grant not in force")
	}
	for _, action := range []string{"access.request", "access.break-glass", alert.ActionPrefix + "break-glass", "access.grant"} {
		if es := f.events(action); len(es) != 1 || es[0].Target != "access:"+r.ID {
			t.Fatalf("%s events: %+v", action, es)
		}
	}
	if text, _ := detail(t, f.events("access.break-glass")[0])["text"].(string); !strings.HasPrefix(text, "BREAK-GLASS: olive@example.com granted themselves tag:prod-db:22 for 30m") {
		t.Fatalf("break-glass text %q", text)
	}
	d := detail(t, f.events("alert.break-glass")[0])
	if d["requester"] != "olive@example.com" || d["destination"] != "tag:prod-db:22" || d["reason"] != "db down" || d["text"] == "" {
		t.Fatalf("alert detail %v", d)
	}
}

// TestRevokeAndCancelActive: an approver ends a grant early; a requester
// ends their own; either withdraws it from the engine.
func TestRevokeAndCancelActive(t *testing.T) {
	f := newFixture(t)
	a := f.request("ann", "tag:prod-db:5432", time.Hour, "x")
	b := f.request("bob", "tag:prod-db:5432", time.Hour, "y")
	for _, r := range []wire.AccessRequest{a, b} {
		if _, err := f.svc.Approve(f.ctx, f.node("sam"), r.ID, 0); err != nil {
			t.Fatal(err)
		}
	}
	_, err := f.svc.Revoke(f.ctx, f.node("ann"), a.ID, "")
	wantCode(t, err, wire.AccessForbidden) // own grant: cancel it
	_, err = f.svc.Revoke(f.ctx, f.node("olive"), a.ID, "")
	wantCode(t, err, wire.AccessForbidden)
	got, err := f.svc.Revoke(f.ctx, f.node("sam"), a.ID, "done early")
	if err != nil || got.State != wire.AccessRevoked || got.Note != "done early" {
		t.Fatalf("revoke: %+v, %v", got, err)
	}
	if got, err = f.svc.Cancel(f.ctx, f.node("bob"), b.ID); err != nil || got.State != wire.AccessCancelled || got.Ended.IsZero() {
		t.Fatalf("cancel active: %+v, %v", got, err)
	}
	if gs := f.engine.Grants(); len(gs) != 0 {
		t.Fatalf("grants left: %+v", gs)
	}
	if es := f.events("access.revoke"); len(es) != 3 || es[2].Outcome != "ok" {
		t.Fatalf("revoke events %+v", es)
	}
}

// TestAdminDecides: an admin through the admin API approves (audited
// asAdmin) and revokes.
func TestAdminDecides(t *testing.T) {
	f := newFixture(t)
	r := f.request("ann", "tag:prod-db:5432", time.Hour, "x")
	if _, err := f.svc.Approve(f.ctx, f.admin(), r.ID, 0); err != nil {
		t.Fatal(err)
	}
	if d := detail(t, f.events("access.approve")[0]); d["asAdmin"] != true {
		t.Fatalf("approve detail %v", d)
	}
	if _, err := f.svc.Revoke(f.ctx, f.admin(), r.ID, "audit"); err != nil {
		t.Fatal(err)
	}
}

// TestRestart: a grant survives a restart (a new engine and service over
// the same store) with its expiry; one that expired while the
// coordinator was down is recorded expired and not put back.
func TestRestart(t *testing.T) {
	f := newFixture(t)
	long := f.request("ann", "tag:prod-db:5432", 3*time.Hour, "x")
	short := f.request("bob", "tag:prod-db:5432", time.Hour, "y")
	for _, r := range []wire.AccessRequest{long, short} {
		if _, err := f.svc.Approve(f.ctx, f.node("sam"), r.ID, 0); err != nil {
			t.Fatal(err)
		}
	}
	f.clock.Advance(2 * time.Hour) // down for two hours
	f.newEngine()
	f.loadNodes()
	f.svc = f.newService()
	if err := f.svc.Start(f.ctx); err != nil {
		t.Fatal(err)
	}
	gs := f.grants()
	if len(gs) != 1 || !gs[long.ID].Until.Equal(t0.Add(3*time.Hour)) {
		t.Fatalf("grants after restart %+v", gs)
	}
	if es := f.events("access.expire"); len(es) != 1 || es[0].Target != "access:"+short.ID {
		t.Fatalf("expired while down: %+v", es)
	}
}

// TestPolicyChanged: a grant whose access rule leaves the policy ends;
// others stay.
func TestPolicyChanged(t *testing.T) {
	f := newFixture(t)
	db := f.request("ann", "tag:prod-db:5432", time.Hour, "x")
	if _, err := f.svc.Approve(f.ctx, f.node("sam"), db.ID, 0); err != nil {
		t.Fatal(err)
	}
	glass := f.request("olive", "tag:prod-db:22", time.Hour, "y")
	pending := f.request("bob", "tag:prod-db:5432", time.Hour, "z")
	f.pol = mustPolicy(t, strings.Replace(testPolicy,
		`{"src": ["group:eng"], "dst": ["tag:prod-db:5432"], "approvers": ["group:sre"], "maxDuration": "4h", "reason": "required"},`, "", 1))
	f.engine.SetPolicy(f.pol)
	if err := f.svc.PolicyChanged(f.ctx, f.pol); err != nil {
		t.Fatal(err)
	}
	gs := f.grants()
	if _, ok := gs[db.ID]; ok || len(gs) != 1 {
		t.Fatalf("grants after the rule left: %+v", gs)
	}
	rs, _ := f.svc.List(f.ctx, f.admin(), false)
	for _, r := range rs {
		if r.ID == db.ID && (r.State != wire.AccessRevoked || r.Note != "access rule removed from the policy") {
			t.Fatalf("ended grant %+v", r)
		}
		if r.ID == glass.ID && r.State != wire.AccessActive {
			t.Fatalf("other grant %+v", r)
		}
	}
	// A pending request is judged by the policy at decision time.
	_, err := f.svc.Approve(f.ctx, f.node("sam"), pending.ID, 0)
	wantCode(t, err, wire.AccessNoRule)
	// Its approvers are gone with its rule; an admin may still deny it.
	if _, err := f.svc.Deny(f.ctx, f.admin(), pending.ID, "rule gone"); err != nil {
		t.Fatalf("deny after the rule left: %v", err)
	}
}
