package access

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/internal/wire"
)

// TestRequestRefused: every request the rules do not allow is refused
// with its code and a message that says what to do, and audited.
func TestRequestRefused(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name   string
		caller Caller
		dst    string
		d      time.Duration
		reason string
		code   string
		msg    string
	}{
		{"no access rule covers it", f.node("ann"), "tag:prod-db:80", time.Hour, "x", wire.AccessNoRule, "no access rule"},
		{"not in src", f.node("sam"), "tag:prod-db:5432", time.Hour, "x", wire.AccessNoRule, "no access rule"},
		{"malformed destination", f.node("ann"), "tag:prod-db", time.Hour, "x", wire.AccessInvalid, "tag:prod-db"},
		{"above maxDuration", f.node("ann"), "tag:prod-db:5432", 5 * time.Hour, "x", wire.AccessInvalid, "maxDuration 4h"},
		{"zero duration", f.node("ann"), "tag:prod-db:5432", 0, "x", wire.AccessInvalid, "above zero"},
		{"reason required", f.node("ann"), "tag:prod-db:5432", time.Hour, " ", wire.AccessInvalid, "requires a reason"},
		{"stale MFA", f.node("ann"), "tag:prod-db:22", time.Hour, "", wire.AccessMFARequired, "within the last 15m"},
		{"not from a device", f.admin(), "tag:prod-db:5432", time.Hour, "x", wire.AccessInvalid, "from the device"},
		{"overlong reason", f.node("ann"), "tag:prod-db:5432", time.Hour, strings.Repeat("x", MaxReason+1), wire.AccessInvalid, "longer than"},
		{"unknown node", Caller{Node: 999}, "tag:prod-db:5432", time.Hour, "x", wire.AccessForbidden, "not registered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.Request(f.ctx, tc.caller, tc.dst, tc.d, tc.reason)
			wantCode(t, err, tc.code)
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("message %q does not say %q", err, tc.msg)
			}
		})
	}
	_, err := f.svc.Request(f.ctx, f.node("ann"), "tag:prod-db:22", time.Hour, "")
	if e, ok := err.(*Error); !ok || e.MFAMaxAge != 15*time.Minute {
		t.Fatalf("stale MFA: %#v, want MFAMaxAge 15m", err)
	}
	// Every refusal but the unknown node's (a caller not resolved) is
	// audited, the stale MFA twice.
	if n := len(f.events("access.request")); n != 10 {
		t.Fatalf("%d refused requests audited, want 10", n)
	}
	for _, e := range f.events("access.request") {
		if e.Outcome != audit.Denied {
			t.Fatalf("refusal audited as %q", e.Outcome)
		}
	}
	if rs, _ := f.svc.List(f.ctx, f.admin(), false); len(rs) != 0 {
		t.Fatalf("refused requests stored: %+v", rs)
	}
}

// TestMFAFresh: once the user signs in with a second factor, the same
// request is filed.
func TestMFAFresh(t *testing.T) {
	f := newFixture(t)
	u := f.users["ann"]
	u.MFAAt = t0.Add(-time.Minute)
	if err := f.st.UpdateUser(f.ctx, u); err != nil {
		t.Fatal(err)
	}
	r := f.request("ann", "tag:prod-db:22", time.Hour, "")
	if r.State != wire.AccessPending || r.Rule != "access[2]" {
		t.Fatalf("filed %+v", r)
	}
}

// TestPendingBound: a user has at most MaxPending pending requests.
func TestPendingBound(t *testing.T) {
	f := newFixture(t)
	for range DefaultMaxPending {
		f.request("ann", "tag:prod-db:5432", time.Hour, "x")
	}
	_, err := f.svc.Request(f.ctx, f.node("ann2"), "tag:prod-db:5432", time.Hour, "x")
	wantCode(t, err, wire.AccessConflict)
	f.request("bob", "tag:prod-db:5432", time.Hour, "x") // others are not held up
}

// TestDecisionsRefused: who may not decide, and requests in the wrong
// state.
func TestDecisionsRefused(t *testing.T) {
	f := newFixture(t)
	r := f.request("ann", "tag:prod-db:5432", 2*time.Hour, "INC-4211")
	denied := f.request("bob", "tag:prod-db:5432", time.Hour, "x")
	if _, err := f.svc.Deny(f.ctx, f.node("sam"), denied.ID, "no"); err != nil {
		t.Fatal(err)
	}
	rootOwn := f.users["ann"]
	for _, tc := range []struct {
		name string
		op   func() error
		code string
	}{
		{"self-approval", func() error { _, err := f.svc.Approve(f.ctx, f.node("ann"), r.ID, 0); return err }, wire.AccessForbidden},
		{"self-approval from another device", func() error { _, err := f.svc.Approve(f.ctx, f.node("ann2"), r.ID, 0); return err }, wire.AccessForbidden},
		{"self-approval as admin", func() error {
			c := f.admin()
			c.Actor.UserID, c.Actor.Name = rootOwn.ID, "user:"+rootOwn.Name
			_, err := f.svc.Approve(f.ctx, c, r.ID, 0)
			return err
		}, wire.AccessForbidden},
		{"non-approver", func() error { _, err := f.svc.Approve(f.ctx, f.node("bob"), r.ID, 0); return err }, wire.AccessForbidden},
		{"tagged device approves", func() error { _, err := f.svc.Approve(f.ctx, f.node("db"), r.ID, 0); return err }, wire.AccessForbidden},
		{"non-approver denies", func() error { _, err := f.svc.Deny(f.ctx, f.node("olive"), r.ID, "no"); return err }, wire.AccessForbidden},
		{"lengthened", func() error { _, err := f.svc.Approve(f.ctx, f.node("sam"), r.ID, 3*time.Hour); return err }, wire.AccessInvalid},
		{"unknown ID", func() error { _, err := f.svc.Approve(f.ctx, f.node("sam"), "ar-999", 0); return err }, wire.AccessNotFound},
		{"malformed ID", func() error { _, err := f.svc.Approve(f.ctx, f.node("sam"), "x-1", 0); return err }, wire.AccessInvalid},
		{"approve denied", func() error { _, err := f.svc.Approve(f.ctx, f.node("sam"), denied.ID, 0); return err }, wire.AccessConflict},
		{"revoke pending", func() error { _, err := f.svc.Revoke(f.ctx, f.node("sam"), r.ID, ""); return err }, wire.AccessConflict},
		{"cancel another's", func() error { _, err := f.svc.Cancel(f.ctx, f.node("bob"), r.ID); return err }, wire.AccessNotFound},
		{"integration key", func() error {
			c := f.admin()
			c.Actor.Integration = "mdm"
			_, err := f.svc.Approve(f.ctx, c, r.ID, 0)
			return err
		}, wire.AccessForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) { wantCode(t, tc.op(), tc.code) })
	}
	if got, _ := f.svc.List(f.ctx, f.node("ann"), false); len(got) != 1 || got[0].State != wire.AccessPending {
		t.Fatalf("after refusals: %+v", got)
	}
	refused := 0
	for _, e := range append(f.events("access.approve"), f.events("access.deny")...) {
		if e.Outcome == audit.Denied {
			refused++
		}
	}
	// Approvals and denials refused once the caller and ID were read.
	if refused != 9 {
		t.Fatalf("%d refused approvals and denials audited, want 9", refused)
	}
}

// TestDenyAndCancel: a denial and a cancel end pending requests, each
// audited with its reason.
func TestDenyAndCancel(t *testing.T) {
	f := newFixture(t)
	a := f.request("ann", "tag:prod-db:5432", time.Hour, "INC-1")
	b := f.request("bob", "tag:prod-db:5432", time.Hour, "INC-2")
	got, err := f.svc.Deny(f.ctx, f.node("sam"), a.ID, "use the replica")
	if err != nil || got.State != wire.AccessDenied || got.Note != "use the replica" || got.Approver != "user:sam@example.com" {
		t.Fatalf("deny: %+v, %v", got, err)
	}
	if got, err = f.svc.Cancel(f.ctx, f.node("bob"), b.ID); err != nil || got.State != wire.AccessCancelled {
		t.Fatalf("cancel: %+v, %v", got, err)
	}
	d := detail(t, f.events("access.deny")[0])
	if d["requester"] != "ann@example.com" || d["approver"] != "user:sam@example.com" || d["note"] != "use the replica" ||
		d["destination"] != "tag:prod-db:5432" || d["reason"] != "INC-1" || d["duration"] != "1h0m0s" {
		t.Fatalf("deny detail %v", d)
	}
	if es := f.events("access.cancel"); len(es) != 1 || es[0].Actor != "user:bob@example.com" {
		t.Fatalf("cancel events %+v", es)
	}
	if rs, _ := f.svc.List(f.ctx, f.node("sam"), true); len(rs) != 0 {
		t.Fatalf("still pending: %+v", rs)
	}
}

// TestListPending: approvers see the pending requests they may approve,
// requesters their own, admins all.
func TestListPending(t *testing.T) {
	f := newFixture(t)
	a := f.request("ann", "tag:prod-db:5432", time.Hour, "INC-1")
	f.request("bob", "tag:prod-db:5432", time.Hour, "INC-2")
	ids := func(rs []wire.AccessRequest, err error) string {
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, r := range rs {
			s = append(s, r.ID)
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct {
		name    string
		c       Caller
		pending bool
		want    string
	}{
		{"approver's pending", f.node("sam"), true, "ar-2,ar-1"},
		{"requester's pending excludes own", f.node("ann"), true, ""},
		{"non-approver's pending", f.node("olive"), true, ""},
		{"own requests, any device", f.node("ann2"), false, "ar-1"},
		{"admin sees all", f.admin(), false, "ar-2,ar-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ids(f.svc.List(f.ctx, tc.c, tc.pending)); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	if a.User != "ann@example.com" || a.NodeName != "ann" || a.Rule != "access[0]" {
		t.Fatalf("request %+v", a)
	}
}

// TestRequestAnnounced: a new request's audit event carries the text
// the access webhook sends, with the commands to approve or deny it.
func TestRequestAnnounced(t *testing.T) {
	f := newFixture(t)
	f.request("ann", "tag:prod-db:5432", 2*time.Hour, "INC-4211")
	es := f.events("access.request")
	if len(es) != 1 {
		t.Fatalf("%d events", len(es))
	}
	text, _ := detail(t, es[0])["text"].(string)
	for _, want := range []string{"ann@example.com requests tag:prod-db:5432 for 2h", "(INC-4211)", "warren access approve ar-1", "warren access deny ar-1 --reason"} {
		if !strings.Contains(text, want) {
			t.Fatalf("text %q lacks %q", text, want)
		}
	}
}

// FuzzRequest: a request's fields from the network never panic the
// service; a refusal carries one of the documented codes, and what it
// files is within the rule's bounds.
func FuzzRequest(f *testing.F) {
	fx := newFixture(f)
	for _, s := range []struct {
		dst, reason string
		d           int64
	}{{"tag:prod-db:5432", "INC-4211", int64(time.Hour)}, {"tag:prod-db:22", "", int64(time.Minute)},
		{"tag:prod-db", "x", 1}, {"100.64.0.6:5432", "x", int64(4 * time.Hour)}, {"*:*", "", -1}} {
		f.Add(s.dst, s.reason, s.d)
	}
	codes := map[string]bool{wire.AccessInvalid: true, wire.AccessNoRule: true, wire.AccessMFARequired: true, wire.AccessConflict: true}
	f.Fuzz(func(t *testing.T, dst, reason string, d int64) {
		r, err := fx.svc.Request(fx.ctx, fx.node("ann"), dst, time.Duration(d), reason)
		if err != nil {
			if !codes[Code(err)] {
				t.Fatalf("request %q %q %d: %v (code %q)", dst, reason, d, err, Code(err))
			}
			return
		}
		if r.Duration <= 0 || r.Duration > 4*time.Hour || r.State != wire.AccessPending || r.Reason == "" || len(r.Reason) > MaxReason ||
			!utf8.ValidString(r.Reason) || !utf8.ValidString(r.Dst) {
			t.Fatalf("filed %+v", r)
		}
		if _, err := fx.svc.Cancel(fx.ctx, fx.node("ann"), r.ID); err != nil {
			t.Fatal(err)
		}
	})
}
