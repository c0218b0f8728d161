package testmesh

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/controlclient"
)

// accessPolicy: group:eng may request tag:prod-db:5432 for at most 4 h
// with a reason, approved by group:sre; group:oncall may take
// tag:prod-db:5433 at once (break-glass). Nobody has standing access.
const accessPolicy = `{
	"groups": {
		"group:eng":    ["ann@example.com", "bob@example.com"],
		"group:sre":    ["sam@example.com"],
		"group:oncall": ["ann@example.com"],
	},
	"tagOwners": {"tag:prod-db": ["autogroup:admin"]},
	"acls": [],
	"access": [
		{"src": ["group:eng"], "dst": ["tag:prod-db:5432"], "approvers": ["group:sre"], "maxDuration": "4h", "reason": "required"},
		{"src": ["group:oncall"], "dst": ["tag:prod-db:5433"], "approvers": [], "selfApprove": true, "maxDuration": "1h"},
	],
}`

// Bounds the issue asks for, allowed generously here (a loaded 2-core
// machine); the measured values are logged.
const (
	grantWithin  = 5 * time.Second // issue: 1 s
	expireWithin = 5 * time.Second // issue: 1 s
	// denyWait is how long a check that a flow is denied tries: a
	// shorter one only makes the check weaker, never flaky.
	denyWait = 500 * time.Millisecond
)

// accessMesh is a mesh under accessPolicy: the database (echoing on 5432
// and 5433), ann's laptop and phone, bob's laptop and sam's laptop.
type accessMesh struct {
	*Mesh
	db, annLaptop, annPhone, bob, sam *Node
	pg, glass                         netip.AddrPort
}

func newAccessMesh(t *testing.T, opts Options) *accessMesh {
	t.Helper()
	opts.Policy = accessPolicy
	m := New(t, opts)
	am := &accessMesh{Mesh: m}
	ops := m.User("ops@example.com")
	am.db = m.AddNode("db", NodeOptions{DataPlane: true, Tags: []string{"tag:prod-db"},
		AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: ops.ID, Tags: []string{"tag:prod-db"}})})
	ann, bob, sam := m.User("ann@example.com"), m.User("bob@example.com"), m.User("sam@example.com")
	annKey := m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID, Reusable: true})
	am.annLaptop = m.AddNode("ann-laptop", NodeOptions{DataPlane: true, AuthKey: annKey})
	am.annPhone = m.AddNode("ann-phone", NodeOptions{DataPlane: true, AuthKey: annKey})
	am.bob = m.AddNode("bob-laptop", NodeOptions{AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: bob.ID})})
	am.sam = m.AddNode("sam-laptop", NodeOptions{AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: sam.ID})})
	for _, n := range []*Node{am.db, am.annLaptop, am.annPhone} {
		must(t, n.WaitFor(wait, func(*controlclient.Netmap) bool { return n.Engine() != nil }))
	}
	for _, n := range []*Node{am.bob, am.sam} {
		must(t, n.WaitFor(wait, func(nm *controlclient.Netmap) bool { return nm != nil }))
	}
	echoOn(t, am.db, 5432)
	echoOn(t, am.db, 5433)
	am.pg = netip.AddrPortFrom(addr4(t, am.db), 5432)
	am.glass = netip.AddrPortFrom(addr4(t, am.db), 5433)
	return am
}

// call runs an access call from n and returns the reply; the call itself
// must not fail.
func call(t *testing.T, n *Node, c wire.AccessCall) *wire.AccessReply {
	t.Helper()
	r, _, err := n.Access(c, nil)
	if err != nil {
		t.Fatalf("%s: access %s: %v", n.Name, c.Op, err)
	}
	return r
}

// ok runs an access call from n that must succeed with one request.
func ok(t *testing.T, n *Node, c wire.AccessCall) wire.AccessRequest {
	t.Helper()
	r := call(t, n, c)
	if r.Code != "" || len(r.Requests) != 1 {
		t.Fatalf("%s: access %s: %s: %s (%d requests)", n.Name, c.Op, r.Code, r.Message, len(r.Requests))
	}
	return r.Requests[0]
}

// refused runs an access call from n that must be refused with code.
func refused(t *testing.T, n *Node, c wire.AccessCall, code, mentions string) {
	t.Helper()
	r := call(t, n, c)
	if r.Code != code || !strings.Contains(r.Message, mentions) {
		t.Fatalf("%s: access %s %+v: %s %q, want %s mentioning %q", n.Name, c.Op, c, r.Code, r.Message, code, mentions)
	}
}

// untilGranted waits until the grant reached both ends (src's netmap
// has dst's node as a peer and dst's has src), returns how long that took
// from since, then checks a fresh connection works.
func untilGranted(t *testing.T, src, dstNode *Node, dst netip.AddrPort, since time.Time, what string) time.Duration {
	t.Helper()
	must(t, src.WaitFor(wait, HasPeers(dstNode.Name)))
	must(t, dstNode.WaitFor(wait, func(nm *controlclient.Netmap) bool {
		for _, p := range nm.Peers {
			if p.Name == src.Name {
				return true
			}
		}
		return false
	}))
	took := time.Since(since)
	if !reachesSoon(src, dst) {
		t.Fatalf("%s: the netmaps carry the grant but no connection works", what)
	}
	return took
}

// openConn dials dst from src and checks a round trip works.
func openConn(t *testing.T, src *Node, dst netip.AddrPort) net.Conn {
	t.Helper()
	c, err := dialWithin(src, dst, wait)
	must(t, err)
	t.Cleanup(func() { c.Close() })
	if !echoes(c, wait) {
		t.Fatal("a fresh connection does not echo")
	}
	return c
}

// TestJITAccessEndToEnd walks the list: denied before; a request
// is pending (still denied); a self-approval, a non-approver, a duration
// above maxDuration and a destination no access rule covers are refused;
// an approver's approval allows the requesting device, and only it,
// within a second; at expiry an open connection stops passing packets
// within a second; deny, revoke and cancel; break-glass without an
// approver, with its alert.
func TestJITAccessEndToEnd(t *testing.T) {
	am := newAccessMesh(t, Options{})
	ann, sam := am.annLaptop, am.sam
	if reaches(ann, am.pg, denyWait) {
		t.Fatal("ann reaches the database before any request")
	}

	// Refusals.
	refused(t, ann, wire.AccessCall{Op: wire.AccessOpRequest, Dst: "tag:prod-db:5432", For: 5 * time.Hour, Reason: "INC-1"}, wire.AccessInvalid, "maxDuration")
	refused(t, ann, wire.AccessCall{Op: wire.AccessOpRequest, Dst: "tag:prod-db:22", For: time.Hour, Reason: "INC-1"}, wire.AccessNoRule, "tag:prod-db:22")
	refused(t, ann, wire.AccessCall{Op: wire.AccessOpRequest, Dst: "tag:prod-db:5432", For: time.Hour}, wire.AccessInvalid, "reason")

	// Pending: still denied.
	const grantFor = 6 * time.Second
	req := ok(t, ann, wire.AccessCall{Op: wire.AccessOpRequest, Dst: "tag:prod-db:5432", For: grantFor, Reason: "INC-4211"})
	if req.State != wire.AccessPending || req.NodeName != "ann-laptop" || req.User != "ann@example.com" {
		t.Fatalf("request %+v", req)
	}
	if reaches(ann, am.pg, denyWait) {
		t.Fatal("a pending request lets ann through")
	}
	refused(t, ann, wire.AccessCall{Op: wire.AccessOpApprove, Request: req.ID}, wire.AccessForbidden, "own request")
	refused(t, am.annPhone, wire.AccessCall{Op: wire.AccessOpApprove, Request: req.ID}, wire.AccessForbidden, "own request")
	refused(t, am.bob, wire.AccessCall{Op: wire.AccessOpApprove, Request: req.ID}, wire.AccessForbidden, "approver")
	pending := call(t, sam, wire.AccessCall{Op: wire.AccessOpList, Pending: true})
	if pending.Code != "" || len(pending.Requests) != 1 || pending.Requests[0].ID != req.ID {
		t.Fatalf("sam's pending list: %+v", pending)
	}

	// Approved: ann's laptop, and only it, reaches the database.
	approved := time.Now()
	grant := ok(t, sam, wire.AccessCall{Op: wire.AccessOpApprove, Request: req.ID})
	if grant.State != wire.AccessActive || !strings.Contains(grant.Approver, "sam@example.com") || grant.Expires.IsZero() {
		t.Fatalf("approved %+v", grant)
	}
	took := untilGranted(t, ann, am.db, am.pg, approved, "ann's laptop to reach the database after the approval")
	t.Logf("approval to the grant in both netmaps: %v (issue: within 1 s)", took)
	if took > grantWithin {
		t.Errorf("the grant took %v to reach the data path, want within %v", took, grantWithin)
	}
	if reaches(am.annPhone, am.pg, denyWait) {
		t.Fatal("the grant reaches ann's phone, not only the requesting device")
	}
	if nm := am.annPhone.Netmap(); len(nm.Peers) != 0 {
		t.Fatalf("ann's phone got peers from her laptop's grant: %s", Describe(nm))
	}

	// Expiry cuts an open connection.
	conn := openConn(t, ann, am.pg)
	cut := untilCut(t, conn, grant.Expires, grantFor+expireWithin, "the granted connection")
	t.Logf("grant expiry to cut: %v (issue: within 1 s)", cut)
	if cut > expireWithin {
		t.Errorf("the expired grant was cut %v after its end, want within %v", cut, expireWithin)
	}
	poll.Until(t, wait, "the request to show expired", func() error {
		r := call(t, ann, wire.AccessCall{Op: wire.AccessOpList})
		for _, q := range r.Requests {
			if q.ID == req.ID && q.State != wire.AccessExpired {
				return errors.New("state " + q.State)
			}
		}
		return nil
	})

	// Deny.
	req = ok(t, ann, wire.AccessCall{Op: wire.AccessOpRequest, Dst: "tag:prod-db:5432", For: time.Hour, Reason: "INC-4212"})
	denied := ok(t, sam, wire.AccessCall{Op: wire.AccessOpDeny, Request: req.ID, Reason: "use the replica"})
	if denied.State != wire.AccessDenied || denied.Note != "use the replica" {
		t.Fatalf("denied %+v", denied)
	}
	refused(t, sam, wire.AccessCall{Op: wire.AccessOpApprove, Request: req.ID}, wire.AccessConflict, "not pending")

	// Revoke ends a grant early.
	req = ok(t, ann, wire.AccessCall{Op: wire.AccessOpRequest, Dst: "tag:prod-db:5432", For: time.Hour, Reason: "INC-4213"})
	ok(t, sam, wire.AccessCall{Op: wire.AccessOpApprove, Request: req.ID, For: 30 * time.Minute})
	untilGranted(t, ann, am.db, am.pg, time.Now(), "ann's laptop to reach the database again")
	conn = openConn(t, ann, am.pg)
	revoked := time.Now()
	gone := ok(t, sam, wire.AccessCall{Op: wire.AccessOpRevoke, Request: req.ID, Reason: "incident closed"})
	if gone.State != wire.AccessRevoked {
		t.Fatalf("revoked %+v", gone)
	}
	t.Logf("revoke to cut: %v", untilCut(t, conn, revoked, expireWithin, "the revoked grant's connection"))

	// Cancel a pending request.
	req = ok(t, ann, wire.AccessCall{Op: wire.AccessOpRequest, Dst: "tag:prod-db:5432", For: time.Hour, Reason: "INC-4214"})
	if r := call(t, am.bob, wire.AccessCall{Op: wire.AccessOpCancel, Request: req.ID}); r.Code == "" {
		t.Fatalf("bob cancelled ann's request: %+v", r)
	}
	if c := ok(t, ann, wire.AccessCall{Op: wire.AccessOpCancel, Request: req.ID}); c.State != wire.AccessCancelled {
		t.Fatalf("cancelled %+v", c)
	}

	// Break-glass: in force at once, without an approver, alerted.
	if reaches(ann, am.glass, denyWait) {
		t.Fatal("ann reaches the break-glass port before asking")
	}
	glass := ok(t, ann, wire.AccessCall{Op: wire.AccessOpRequest, Dst: "tag:prod-db:5433", For: 30 * time.Minute})
	if glass.State != wire.AccessActive || !glass.BreakGlass {
		t.Fatalf("break-glass request %+v", glass)
	}
	if !reachesSoon(ann, am.glass) {
		t.Fatal("the break-glass grant does not let ann's laptop through")
	}
	if len(auditWith(t, am.Mesh, "alert.break-glass", "ok", glass.ID)) != 1 {
		t.Fatal("no alert.break-glass event for the break-glass grant")
	}
	for _, action := range []string{"access.request", "access.approve", "access.deny", "access.revoke", "access.cancel", "access.expire", "access.break-glass"} {
		if len(auditWith(t, am.Mesh, action, "ok", "")) == 0 {
			t.Errorf("no %s audit event", action)
		}
	}
}

// TestJITAccessSurvivesRestart: a grant in force when the coordinator
// restarts is in force again after it (with the same expiry), and still
// ends on time.
func TestJITAccessSurvivesRestart(t *testing.T) {
	am := newAccessMesh(t, Options{})
	ann := am.annLaptop
	const grantFor = 10 * time.Second
	req := ok(t, ann, wire.AccessCall{Op: wire.AccessOpRequest, Dst: "tag:prod-db:5432", For: grantFor, Reason: "INC-4211"})
	grant := ok(t, am.sam, wire.AccessCall{Op: wire.AccessOpApprove, Request: req.ID})
	untilGranted(t, ann, am.db, am.pg, time.Now(), "ann's laptop to reach the database")

	sessions := ann.Client.Sessions()
	am.Restart()
	poll.UntilTrue(t, wait, "ann's laptop to reconnect", func() bool { return ann.Client.Sessions() > sessions && ann.Client.Connected() })
	must(t, am.db.WaitFor(wait, HasPeers("ann-laptop")))
	list := call(t, ann, wire.AccessCall{Op: wire.AccessOpList})
	if len(list.Requests) != 1 || list.Requests[0].State != wire.AccessActive || !list.Requests[0].Expires.Equal(grant.Expires) {
		t.Fatalf("after the restart: %+v, want %s active until %v", list.Requests, req.ID, grant.Expires)
	}
	if time.Now().After(grant.Expires) {
		t.Skip("the machine took the whole grant to restart the coordinator; nothing left to check")
	}
	conn := openConn(t, ann, am.pg)
	cut := untilCut(t, conn, grant.Expires, grantFor+expireWithin, "the granted connection after the restart")
	t.Logf("grant expiry to cut after a restart: %v", cut)
	if cut > expireWithin {
		t.Errorf("the grant was cut %v after its end, want within %v", cut, expireWithin)
	}
}
