package testmesh

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/api"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/asciicast"
	"github.com/warrenmesh/warren/internal/recording"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/controlclient"
)

// sshCallPolicy: members reach tag:prod on port 22; ann must have signed
// in with MFA within the hour to log in as root; members log in as anyone
// but root, and those sessions are recorded by the coordinator (the
// server has warren:ssh-record).
const sshCallPolicy = `{
	"tagOwners": {"tag:prod": ["autogroup:admin"]},
	"acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:prod:22"]}],
	"nodeAttrs": [{"target": ["tag:prod"], "attr": ["warren:ssh-record"]}],
	"ssh": [
		{"action": "check", "src": ["ann@example.com"], "dst": ["tag:prod"], "users": ["root"], "checkPeriod": "1h"},
		{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:prod"], "users": ["autogroup:nonroot"]},
	],
}`

// sshRule returns the rule named name of nm's SSH policy.
func sshRule(nm *controlclient.Netmap, name string) *wire.SSHRule {
	if nm == nil || nm.SSH == nil {
		return nil
	}
	for i := range nm.SSH.Rules {
		if nm.SSH.Rules[i].Rule == name {
			return &nm.SSH.Rules[i]
		}
	}
	return nil
}

// TestSSHCallsOnTheCoordinator runs the coordinator's side of SSH with a
// real tagged server, real laptops and the in-process OpenID Provider:
// the server's netmap carries its SSH policy; a check that needs a
// sign-in completes as the right user only; start and end store the
// session with its audit events; a refusal is audited; and a disabled
// user's laptop leaves the server's peers and SSH sources.
func TestSSHCallsOnTheCoordinator(t *testing.T) {
	users := slices.Clone(stepUpUsers)
	users[0].Claims = map[string]any{"name": "Ann  Lee\t"} // her display name, spaces collapsed
	m := New(t, Options{Policy: sshCallPolicy, OIDC: &OIDCOptions{Users: users}})
	ops := m.User("ops@example.com")
	prod := m.AddNode("prod", NodeOptions{Tags: []string{"tag:prod"},
		AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: ops.ID, Tags: []string{"tag:prod"}})})
	ann := m.Up("ann-laptop", NodeOptions{}, m.AsOIDCUser("ann"))
	bob := m.Up("bob-laptop", NodeOptions{}, m.AsOIDCUser("bob"))
	annID, bobID := ann.Netmap().Self.ID, bob.Netmap().Self.ID
	must(t, prod.WaitFor(wait, func(nm *controlclient.Netmap) bool {
		r := sshRule(nm, "ssh[1]")
		return r != nil && slices.Equal(r.Sources, []wire.NodeID{annID, bobID}) && r.Record != nil
	}))
	if r := sshRule(prod.Netmap(), "ssh[0]"); r == nil || r.Action != wire.SSHCheck || r.CheckPeriod != time.Hour ||
		!slices.Equal(r.Sources, []wire.NodeID{annID}) {
		t.Fatalf("the check rule on the server: %+v", r)
	}
	// The server sees who is behind each peer: login and display name.
	for _, p := range prod.Netmap().Peers {
		if p.ID == annID && (p.User != "ann@example.com" || p.UserName != "Ann Lee") {
			t.Fatalf("ann's record on the server: user %q, name %q", p.User, p.UserName)
		}
	}
	if ann.Netmap().SSH != nil {
		t.Fatalf("a laptop no rule targets got %+v", ann.Netmap().SSH)
	}

	check := wire.SSHCall{Op: wire.SSHOpCheck, Src: annID, LocalUser: "root", Rule: "ssh[0]"}
	// ann signed in without MFA: not fresh; bob signs in at her URL.
	r, urls, err := prod.SSHCall(check, m.AsOIDCUser("bob"))
	if err != nil || len(urls) != 1 || r.Code != wire.SSHDenied || !strings.Contains(r.Message, "someone other") {
		t.Fatalf("check signed in as bob: %+v, URLs %q, %v", r, urls, err)
	}
	if len(auditWith(t, m, "ssh.check", "denied", `"result":"failed"`)) != 1 {
		t.Error("the failed check was not audited")
	}
	// ann signs in with a second factor: ok.
	m.OP.SetClaims("sub-ann", []string{"pwd", "otp"}, []string{"eng"})
	r, urls, err = prod.SSHCall(check, m.AsOIDCUser("ann"))
	if err != nil || len(urls) != 1 || r.Code != "" {
		t.Fatalf("check signed in as ann with MFA: %+v, URLs %q, %v", r, urls, err)
	}
	// Fresh now: no sign-in.
	r, urls, err = prod.SSHCall(check, nil)
	if err != nil || len(urls) != 0 || r.Code != "" {
		t.Fatalf("check with a fresh sign-in: %+v, URLs %q, %v", r, urls, err)
	}
	if len(auditWith(t, m, "ssh.check", "ok", `"result":"signed-in"`)) != 1 || len(auditWith(t, m, "ssh.check", "ok", `"result":"fresh"`)) != 1 {
		t.Error("want one signed-in and one fresh ssh.check")
	}
	// No check rule for bob as root (he has none), nor for ann as ubuntu
	// (an accept rule): the coordinator never trusts the node's rule.
	for _, c := range []wire.SSHCall{
		{Op: wire.SSHOpCheck, Src: bobID, LocalUser: "root", Rule: "ssh[0]"},
		{Op: wire.SSHOpCheck, Src: annID, LocalUser: "ubuntu", Rule: "ssh[0]"},
	} {
		if r, _, err := prod.SSHCall(c, nil); err != nil || r.Code != wire.SSHDenied {
			t.Fatalf("check %+v: %+v, %v", c, r, err)
		}
	}

	// Start, recorded by the coordinator: a row, an audit event, and a
	// URL and single-use token to stream the cast to.
	start := wire.SSHCall{Op: wire.SSHOpStart, Session: "ssh-0123456789abcdef", Src: bobID, LocalUser: "bob", Rule: "ssh[1]",
		Command: "uptime", Recorder: wire.RecordToCoordinator}
	r, _, err = prod.SSHCall(start, nil)
	if err != nil || r.Code != "" || !strings.HasSuffix(r.RecordURL, "/ssh/record/ssh-0123456789abcdef") || len(r.RecordToken) < 32 {
		t.Fatalf("start: %+v, %v", r, err)
	}
	ctx := context.Background()
	st := m.Coord.Store()
	row, err := st.GetSSHSession(ctx, start.Session)
	if err != nil || row.Login != "bob@example.com" || row.LocalUser != "bob" || row.Rule != "ssh[1]" || row.NodeName != "prod" ||
		row.Recorder != wire.RecordToCoordinator || !strings.HasSuffix(row.Recording, "/recording") {
		t.Fatalf("stored session %+v, %v", row, err)
	}
	if len(auditWith(t, m, "ssh.session.start", "ok", start.Session)) != 1 {
		t.Error("ssh.session.start not audited")
	}
	if _, err := st.TakeSSHRecordToken(ctx, start.Session, "not-the-token"); err == nil {
		t.Fatal("a wrong token was taken")
	}
	if _, err := st.TakeSSHRecordToken(ctx, start.Session, r.RecordToken); err != nil {
		t.Fatalf("the token: %v", err)
	}
	if _, err := st.TakeSSHRecordToken(ctx, start.Session, r.RecordToken); err == nil {
		t.Fatal("the token was taken twice")
	}
	// The same session ID again, and a start for a login no rule allows.
	if r, _, _ := prod.SSHCall(start, nil); r == nil || r.Code != wire.SSHInvalid {
		t.Fatalf("start again: %+v", r)
	}
	if r, _, _ := prod.SSHCall(wire.SSHCall{Op: wire.SSHOpStart, Session: "ssh-00000000aa", Src: bobID, LocalUser: "root"}, nil); r == nil || r.Code != wire.SSHDenied {
		t.Fatalf("start as root for bob: %+v", r)
	}

	// End: by the server, once.
	end := wire.SSHCall{Op: wire.SSHOpEnd, Session: start.Session, Src: bobID, Duration: 3 * time.Second, ExitCode: 0}
	if r, _, err := prod.SSHCall(end, nil); err != nil || r.Code != "" {
		t.Fatalf("end: %+v, %v", r, err)
	}
	if r, _, _ := prod.SSHCall(end, nil); r == nil || r.Code != wire.SSHInvalid {
		t.Fatalf("end again: %+v", r)
	}
	if row, _ := st.GetSSHSession(ctx, start.Session); row.Ended.IsZero() || row.Duration != 3*time.Second || row.ExitCode != 0 {
		t.Fatalf("ended session %+v", row)
	}
	if len(auditWith(t, m, "ssh.session.end", "ok", start.Session)) != 1 {
		t.Error("ssh.session.end not audited")
	}
	// A laptop is no SSH server with peers to speak for: its calls about
	// a node that is not its peer are refused.
	if r, _, _ := ann.SSHCall(wire.SSHCall{Op: wire.SSHOpStart, Session: "ssh-00000000bb", Src: bobID, LocalUser: "bob"}, nil); r == nil || r.Code != wire.SSHDenied {
		t.Fatalf("start from a laptop about another laptop: %+v", r)
	}

	// A refusal is audited.
	if r, _, err := prod.SSHCall(wire.SSHCall{Op: wire.SSHOpDeny, Src: bobID, LocalUser: "root", Reason: "no rule"}, nil); err != nil || r.Code != "" {
		t.Fatalf("deny: %+v, %v", r, err)
	}
	if len(auditWith(t, m, "ssh.deny", "denied", `"localUser":"root"`)) != 1 {
		t.Error("ssh.deny not audited")
	}

	// bob is disabled: his laptop leaves the server's peers and every SSH
	// rule's Sources, and calls about it are refused.
	u := userNamed(t, m, "bob@example.com")
	_, err = m.Coord.Registry().SetUserDisabled(ctx, Admin, u.ID, true)
	must(t, err)
	must(t, prod.WaitFor(wait, func(nm *controlclient.Netmap) bool {
		r := sshRule(nm, "ssh[1]")
		return r != nil && slices.Equal(r.Sources, []wire.NodeID{annID}) && !slices.ContainsFunc(nm.Peers, func(p wire.Node) bool { return p.ID == bobID })
	}))
	if r, _, _ := prod.SSHCall(wire.SSHCall{Op: wire.SSHOpStart, Session: "ssh-00000000cc", Src: bobID, LocalUser: "bob"}, nil); r == nil || r.Code != wire.SSHDenied {
		t.Fatalf("start for a disabled user: %+v", r)
	}
	list, err := st.ListSSHSessions(ctx, store.SSHSessionFilter{Login: "bob@example.com"})
	if err != nil || len(list) != 1 {
		t.Fatalf("bob's sessions: %+v, %v", list, err)
	}
}

// TestSSHCoordinatorRecords: a session recorded by the coordinator is
// streamed over real HTTP to the start reply's URL with its single-use
// token (a wrong or spent token is refused), stored, listed by the admin
// API with its recording link, and served back as a cast that parses;
// members may not read it.
func TestSSHCoordinatorRecords(t *testing.T) {
	m := New(t, Options{Policy: sshCallPolicy})
	reg := m.Coord.Registry()
	ctx := context.Background()
	ops := m.User("ops@example.com")
	bobUser := m.User("bob@example.com")
	prod := m.AddNode("prod", NodeOptions{Tags: []string{"tag:prod"},
		AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: ops.ID, Tags: []string{"tag:prod"}})})
	bob := m.AddNode("bob-laptop", NodeOptions{AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: bobUser.ID})})
	must(t, bob.WaitFor(wait, HasPeers("prod")))
	bobID := bob.Netmap().Self.ID
	must(t, prod.WaitFor(wait, func(nm *controlclient.Netmap) bool {
		r := sshRule(nm, "ssh[1]")
		return r != nil && slices.Contains(r.Sources, bobID)
	}))

	const session = "ssh-feedc0de12345678"
	r, _, err := prod.SSHCall(wire.SSHCall{Op: wire.SSHOpStart, Session: session, Src: bobID, LocalUser: "bob", Rule: "ssh[1]",
		PTY: true, Recorder: wire.RecordToCoordinator}, nil)
	// Without a public URL (no interactive login here) the coordinator
	// answers the path, which the node resolves against its coordinator
	// URL.
	if err != nil || r.Code != "" || r.RecordURL != "/ssh/record/"+session {
		t.Fatalf("start: %+v, %v", r, err)
	}
	r.RecordURL = m.URL + r.RecordURL
	meta := recording.Meta{Session: session, Node: "prod", User: "claimed@evil.example", LocalUser: "bob"}
	sctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if _, err := recording.Start(sctx, nil, r.RecordURL, "not-the-token", meta); err == nil {
		t.Fatal("a wrong token was let upload")
	}
	up, err := recording.Start(sctx, nil, r.RecordURL, r.RecordToken, meta)
	must(t, err)
	cw, err := asciicast.NewWriter(up, asciicast.Header{Version: 2, Width: 80, Height: 24}, time.Now)
	must(t, err)
	must(t, cw.Output([]byte("hello from prod\r\n")))
	must(t, cw.Resize(100, 30))
	must(t, cw.Flush())
	must(t, up.Close())
	if _, err := recording.Start(sctx, nil, r.RecordURL, r.RecordToken, meta); err == nil {
		t.Fatal("a spent token was let upload again")
	}
	if r, _, err := prod.SSHCall(wire.SSHCall{Op: wire.SSHOpEnd, Session: session, Src: bobID, Duration: time.Second, ExitCode: 0}, nil); err != nil || r.Code != "" {
		t.Fatalf("end: %+v, %v", r, err)
	}

	srv := httptest.NewServer(m.Coord.AdminHandler())
	defer srv.Close()
	admin, err := reg.CreateUser(ctx, Admin, store.User{Name: "admin@example.com", Role: store.RoleAdmin})
	must(t, err)
	_, adminKey, err := reg.CreateAPIKey(ctx, Admin, admin.ID, 0)
	must(t, err)
	_, memberKey, err := reg.CreateAPIKey(ctx, Admin, bobUser.ID, 0)
	must(t, err)
	asAdmin, asMember := api.NewRemoteClient(srv.URL, adminKey, nil), api.NewRemoteClient(srv.URL, memberKey, nil)
	list, err := asAdmin.ListSSHSessions(ctx, api.SSHQuery{User: "bob@example.com", Node: "prod"})
	if err != nil || len(list) != 1 || list[0].ID != session || list[0].Recording != "/api/v1/ssh/sessions/"+session+"/recording" ||
		list[0].Duration != 1 || list[0].ExitCode != 0 || list[0].LocalUser != "bob" || list[0].SrcName != "bob-laptop" {
		t.Fatalf("sessions: %+v, %v", list, err)
	}
	if list, err := asAdmin.ListSSHSessions(ctx, api.SSHQuery{User: "ann@example.com"}); err != nil || len(list) != 0 {
		t.Fatalf("ann's sessions: %+v, %v", list, err)
	}
	var cast bytes.Buffer
	must(t, asAdmin.SSHRecording(ctx, session, &cast))
	h, events, err := asciicast.Parse(&cast)
	if err != nil || h.Width != 80 || len(events) != 2 || events[0].Data != "hello from prod\r\n" || events[1].Type != "r" {
		t.Fatalf("the cast: %+v %+v, %v", h, events, err)
	}
	var ae *api.Error
	if _, err := asMember.ListSSHSessions(ctx, api.SSHQuery{}); !errors.As(err, &ae) || ae.Status != http.StatusForbidden {
		t.Fatalf("a member listing sessions: %v", err)
	}
	if err := asMember.SSHRecording(ctx, session, io.Discard); !errors.As(err, &ae) || ae.Status != http.StatusForbidden {
		t.Fatalf("a member reading a recording: %v", err)
	}
}
