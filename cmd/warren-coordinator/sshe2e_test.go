package main

// SSH by mesh identity end to end: the real coordinator (testmesh) with
// the in-process OpenID Provider, real daemons (a tagged server with
// warrend --ssh, users' laptops in userspace mode, recorder nodes behind
// --expose), the warren CLI as ssh's ProxyCommand, and the real OpenSSH
// client logging in as real local Unix users (internal/tstest/sshtest).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/api"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/asciicast"
	"github.com/warrenmesh/warren/internal/recording"
	"github.com/warrenmesh/warren/internal/tstest/buildtest"
	"github.com/warrenmesh/warren/internal/tstest/oidctest"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/tstest/sshtest"
	"github.com/warrenmesh/warren/internal/tstest/testmesh"
	"github.com/warrenmesh/warren/node/daemon"
	"github.com/warrenmesh/warren/node/localapi"
)

// e2eWait bounds every wait; it only ends a hung test.
const e2eWait = 60 * time.Second

// e2eUsers are the provider's accounts: ann and carl may log in to the
// server, bob reaches its port 22 but no ssh rule names him.
var e2eUsers = []oidctest.User{
	{Subject: "sub-ann", Username: "ann", Email: "ann@example.com", EmailVerified: true},
	{Subject: "sub-bob", Username: "bob", Email: "bob@example.com", EmailVerified: true},
	{Subject: "sub-carl", Username: "carl", Email: "carl@example.com", EmailVerified: true},
}

// locals are the server's local accounts, one per situation (each rule
// names its own, so the rule a login meets is known).
type locals struct {
	plain, check, period, rec, coord, dead, open, cut string
	cutUID                                            string // cut's uid, to find its processes
}

// e2ePolicy: port 22 of tag:server is open to ann, bob and carl; the
// server reaches the recorders' port 80. The specific accept rules come
// before the autogroup:nonroot one, since the first matching accept rule
// applies (a matching check rule wins over any accept rule).
func e2ePolicy(l locals) string {
	return fmt.Sprintf(`{
	"tagOwners": {
		"tag:server": ["ops@example.com"],
		"tag:rec": ["ops@example.com"],
		"tag:deadrec": ["ops@example.com"],
	},
	"nodeAttrs": [
		{"target": ["tag:server"], "attr": ["warren:ssh-record"]},
	],
	"acls": [
		{"action": "accept", "src": ["ann@example.com", "bob@example.com", "carl@example.com"], "dst": ["tag:server:22"]},
		{"action": "accept", "src": ["tag:server"], "dst": ["tag:rec:80", "tag:deadrec:80"]},
	],
	"ssh": [
		{"action": "accept", "src": ["ann@example.com"], "dst": ["tag:server"], "users": [%[4]q], "recorder": ["tag:rec"]},
		{"action": "accept", "src": ["ann@example.com"], "dst": ["tag:server"], "users": [%[5]q]},
		{"action": "accept", "src": ["ann@example.com"], "dst": ["tag:server"], "users": [%[6]q], "recorder": ["tag:deadrec"]},
		{"action": "accept", "src": ["ann@example.com"], "dst": ["tag:server"], "users": [%[7]q], "recorder": ["tag:deadrec"], "enforceRecorder": false},
		{"action": "check", "src": ["ann@example.com"], "dst": ["tag:server"], "users": [%[2]q], "checkPeriod": "always"},
		{"action": "check", "src": ["ann@example.com"], "dst": ["tag:server"], "users": [%[3]q], "checkPeriod": "12h"},
		{"action": "accept", "src": ["ann@example.com", "carl@example.com"], "dst": ["tag:server"], "users": ["autogroup:nonroot"]},
	],
}`, l.plain, l.check, l.period, l.rec, l.coord, l.dead, l.open)
}

// sshMesh is the running mesh of TestSSHEndToEnd.
type sshMesh struct {
	m        *testmesh.Mesh
	stateDir string // the coordinator's, with admin.sock
	warren   string // the warren binary
	sockets  map[string]string
	recDir   *recording.Dir // the tag:rec recorder's storage
}

// TestSSHEndToEnd logs in with the real ssh, through warren nc, to a
// tagged server running warrend --ssh: as the mapped non-root user; root
// and a user no rule names refused with the reason; check rules needing a
// sign-in with MFA at the OpenID Provider (each time with "always", not
// again within checkPeriod, never with someone else's sign-in); sessions
// recorded by the coordinator and by a recorder node, replayed; refused
// when no recorder answers, unrecorded but listed so when the rule fails
// open; the sessions in "warren-coordinator ssh sessions" and the audit
// log; and a disabled user's session cut on the server within 2 s.
func TestSSHEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a mesh, the warren binary and the OpenSSH client")
	}
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("the OpenSSH client is not installed (Debian: openssh-client)")
	}
	l := locals{
		plain: sshtest.User(t, "plain").Username, check: sshtest.User(t, "check").Username,
		period: sshtest.User(t, "period").Username, rec: sshtest.User(t, "rec").Username,
		coord: sshtest.User(t, "coord").Username, dead: sshtest.User(t, "dead").Username,
		open: sshtest.User(t, "open").Username,
	}
	cut := sshtest.User(t, "cut")
	l.cut, l.cutUID = cut.Username, cut.Uid
	s := startSSHMesh(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), 4*e2eWait)
	defer cancel()

	// The first login also makes the tunnel: retry until it got through
	// (a refusal would keep failing and end the test at the deadline).
	poll.UntilTrue(t, e2eWait, "ann's first login", func() bool {
		return s.client("ann", l.plain).Run(ctx, t, nil, "id -un").ExitCode == 0
	})
	t.Run("nonroot", func(t *testing.T) {
		res := s.client("ann", l.plain).Run(ctx, t, nil, "id -un; echo $HOME")
		if res.ExitCode != 0 || !strings.HasPrefix(res.Stdout, l.plain+"\n/") {
			t.Fatalf("ssh %s@server id -un: %+v", l.plain, res)
		}
	})
	t.Run("root-refused", func(t *testing.T) {
		res := s.client("ann", "root").Run(ctx, t, nil, "id -un")
		if res.ExitCode != 255 || res.Stdout != "" || !strings.Contains(res.Stderr, `no ssh rule lets ann-laptop (ann@example.com) log in as "root"`) {
			t.Fatalf("ssh root@server: %+v", res)
		}
		t.Logf("refused: %s", strings.TrimSpace(res.Stderr))
	})
	t.Run("no-rule-refused", func(t *testing.T) {
		res := s.client("bob", l.plain).Run(ctx, t, nil, "id -un")
		if res.ExitCode != 255 || res.Stdout != "" || !strings.Contains(res.Stderr, "no ssh rule lets bob-laptop (bob@example.com) log in as") {
			t.Fatalf("bob: ssh %s@server: %+v", l.plain, res)
		}
	})
	t.Run("check", func(t *testing.T) {
		// checkPeriod "always": each session needs a sign-in, shown by ssh.
		for i := range 2 {
			out, urls := s.signInSession(ctx, t, "ann", l.check, "id -un", s.m.AsOIDCUser("ann"))
			if out != l.check+"\n" || len(urls) != 1 {
				t.Fatalf("session %d as %s: printed %q, sign-in URLs %q", i, l.check, out, urls)
			}
		}
		// Someone else signing in at ann's URL does not let her in.
		sess := s.client("ann", l.check).Start(ctx, t, "echo must-not-run")
		for line := range sess.Lines() {
			if u := urlRE.FindString(line); u != "" {
				s.m.AsOIDCUser("bob")(u)
			}
		}
		if res, err := sess.Wait(); err != nil || res.ExitCode != 255 || strings.Contains(res.Stdout, "must-not-run") ||
			!strings.Contains(res.Stderr, "sign-in check failed") {
			t.Fatalf("bob signed in at ann's check URL: %+v, %v", res, err)
		}
		// checkPeriod 12h: ann just signed in, so no sign-in is needed.
		out, urls := s.signInSession(ctx, t, "ann", l.period, "id -un", nil)
		if out != l.period+"\n" || len(urls) != 0 {
			t.Fatalf("as %s within checkPeriod: printed %q, sign-in URLs %q", l.period, out, urls)
		}
	})
	t.Run("record-coordinator", func(t *testing.T) {
		res := s.client("ann", l.coord).Run(ctx, t, nil, "echo recorded-by-coordinator")
		if res.ExitCode != 0 || res.Stdout != "recorded-by-coordinator\n" {
			t.Fatalf("ssh %s@server: %+v", l.coord, res)
		}
		sess := s.sessionWhere(t, "as "+l.coord+" without a PTY", func(e api.SSHSession) bool { return e.LocalUser == l.coord && !e.PTY })
		checkCast(t, s.coordinatorCast(ctx, t, sess.ID, "recorded-by-coordinator"), "recorded-by-coordinator")
	})
	t.Run("record-pty", func(t *testing.T) {
		// A terminal session: its exit status, and the recording's size.
		res := s.client("ann", l.coord).Run(ctx, t, nil, "stty size; echo pty-out; exit 3", "-tt")
		if res.ExitCode != 3 || !strings.Contains(res.Stdout, "pty-out") {
			t.Fatalf("ssh -tt %s@server: %+v", l.coord, res)
		}
		sess := s.sessionWhere(t, "as "+l.coord+" with a PTY", func(e api.SSHSession) bool { return e.LocalUser == l.coord && e.PTY })
		if sess.ExitCode != 3 {
			t.Errorf("the PTY session is listed with exit %d; want 3", sess.ExitCode)
		}
		cast := s.coordinatorCast(ctx, t, sess.ID, "pty-out")
		h, _, err := asciicast.Parse(bytes.NewReader(cast))
		if err != nil || h.Width <= 0 || h.Height <= 0 {
			t.Errorf("the PTY recording's header: %+v, %v", h, err)
		}
		checkCast(t, cast, "pty-out")
	})
	t.Run("record-recorder-node", func(t *testing.T) {
		res := s.client("ann", l.rec).Run(ctx, t, nil, "echo recorded-by-node")
		if res.ExitCode != 0 || res.Stdout != "recorded-by-node\n" {
			t.Fatalf("ssh %s@server: %+v", l.rec, res)
		}
		// The upload ends just after the session: wait for it.
		var infos []recording.Info
		poll.UntilTrue(t, e2eWait, "the recorder node's recording to be complete", func() bool {
			var err error
			infos, err = s.recDir.List()
			return err == nil && len(infos) == 1 && infos[0].Complete
		})
		rc, err := s.recDir.Open(infos[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		var cast bytes.Buffer
		_, err = cast.ReadFrom(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		checkCast(t, cast.Bytes(), "recorded-by-node")
		if sess := s.sessionFor(t, l.rec); sess.Recorder != "rec" || sess.Recording == "" || sess.Unrecorded {
			t.Errorf("the session's row does not point at the recorder node: %+v", sess)
		}
	})
	t.Run("no-recorder-refused", func(t *testing.T) {
		res := s.client("ann", l.dead).Run(ctx, t, nil, "echo must-not-run")
		if res.ExitCode == 0 || strings.Contains(res.Stdout, "must-not-run") {
			t.Fatalf("ssh %s@server with no recorder answering: %+v", l.dead, res)
		}
		t.Logf("refused: %s", strings.TrimSpace(res.Stderr))
	})
	t.Run("fail-open-unrecorded", func(t *testing.T) {
		res := s.client("ann", l.open).Run(ctx, t, nil, "echo unrecorded")
		if res.ExitCode != 0 || res.Stdout != "unrecorded\n" {
			t.Fatalf("ssh %s@server (enforceRecorder false): %+v", l.open, res)
		}
		if sess := s.sessionFor(t, l.open); !sess.Unrecorded || sess.Recorder != "" {
			t.Errorf("the session is not listed as unrecorded: %v", sess)
		}
	})
	t.Run("sessions-and-audit", func(t *testing.T) {
		sess := s.sessionFor(t, l.plain)
		if sess.User != "ann@example.com" || sess.SrcName != "ann-laptop" || sess.NodeName != "server" ||
			sess.Duration <= 0 || sess.ExitCode != 0 || sess.Command != "id -un" && sess.Command != "id -un; echo $HOME" {
			t.Errorf("the session as %s is listed as %+v", l.plain, sess)
		}
		if sess := s.sessionFor(t, l.coord); sess.Recorder != "coordinator" || !strings.HasSuffix(sess.Recording, "/recording") {
			t.Errorf("the recorded session has no link to its recording: %+v", sess)
		}
		// The table names the recording, or says there is none.
		var table bytes.Buffer
		if err := run(ctx, []string{"ssh", "sessions", "--user", "ann@example.com", "--state-dir", s.stateDir}, &table, os.Stderr); err != nil {
			t.Fatalf("ssh sessions: %v", err)
		}
		for _, want := range []string{l.plain, l.coord, "/recording", "NOT RECORDED", "rec: "} {
			if !strings.Contains(table.String(), want) {
				t.Errorf("ssh sessions lacks %q:\n%s", want, table.String())
			}
		}
		if strings.Contains(table.String(), "carl@") {
			t.Errorf("ssh sessions --user ann@example.com lists carl's sessions:\n%s", table.String())
		}
		for _, action := range []string{"ssh.session.start", "ssh.session.end", "ssh.check", "ssh.deny"} {
			events, err := s.m.Coord.Store().ListAudit(context.Background(), store.AuditFilter{Action: action})
			if err != nil || len(events) == 0 {
				t.Errorf("no %s audit event (%v)", action, err)
			}
		}
	})
	// Last: it disables carl.
	t.Run("cut-when-disabled", func(t *testing.T) { s.cutWhenDisabled(ctx, t, l.cut, l.cutUID) })
}

// startSSHMesh starts the coordinator with the OpenID Provider, the
// tagged server (warrend --ssh), the recorder nodes, and the users'
// laptops, each signed in as its user, with their local API sockets.
func startSSHMesh(t *testing.T, l locals) *sshMesh {
	t.Helper()
	stateDir := t.TempDir()
	m := testmesh.New(t, testmesh.Options{
		Policy:      e2ePolicy(l),
		OIDC:        &testmesh.OIDCOptions{Users: e2eUsers},
		Coordinator: coordinator.Config{StateDir: stateDir},
	})
	serveAdminSocket(t, m.Coord, stateDir)
	s := &sshMesh{m: m, stateDir: stateDir, warren: filepath.Join(buildtest.Build(t, "warren"), "warren"), sockets: map[string]string{}}
	ops := m.User("ops@example.com")
	tagged := func(tag string) localapi.UpRequest {
		return localapi.UpRequest{AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: ops.ID, Tags: []string{tag}}), Tags: []string{tag}}
	}

	// tag:rec: a recorder (internal/recording, as warren-recorder serves
	// it) behind --expose 80. tag:deadrec: a node with nothing on port 80.
	dir, err := recording.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s.recDir = dir
	recSrv := serveHTTP(t, recording.Handler(dir, func(*http.Request) (recording.Meta, error) { return recording.Meta{}, nil }))
	rec := m.AddDaemonWith("rec", func(c *daemon.Config) { c.Expose = []daemon.Expose{{Port: 80, Target: recSrv}} })
	deadrec := m.AddDaemon("deadrec")
	server := m.AddDaemonWith("server", func(c *daemon.Config) { c.SSH = true })
	for d, tag := range map[*testmesh.Daemon]string{rec: "tag:rec", deadrec: "tag:deadrec", server: "tag:server"} {
		if _, _, err := d.Up(tagged(tag), nil); err != nil {
			t.Fatalf("%s up: %v", d.Name, err)
		}
	}
	for _, u := range e2eUsers {
		// Sign-ins use a second factor: a check needs one.
		m.OP.SetClaims(u.Subject, []string{"pwd", "otp"}, nil)
	}
	for _, user := range []string{"ann", "bob", "carl"} {
		d := m.AddDaemon(user + "-laptop")
		if _, urls, err := d.Up(localapi.UpRequest{}, m.AsOIDCUser(user)); err != nil || len(urls) != 1 {
			t.Fatalf("%s up: %v (sign-in URLs %q)", d.Name, err, urls)
		}
		s.sockets[user] = serveLocalAPI(t, d.Daemon)
		poll.UntilTrue(t, e2eWait, d.Name+" to see the server", func() bool {
			for _, p := range d.Status(context.Background()).Peers {
				if p.Name == "server" {
					return true
				}
			}
			return false
		})
	}
	return s
}

// client is the OpenSSH client on user's laptop logging in as local,
// through warren nc.
func (s *sshMesh) client(user, local string) sshtest.Client {
	return sshtest.Client{
		User: local, Host: "server",
		ProxyCommand: fmt.Sprintf("%s --socket %s nc %%h %%p", s.warren, s.sockets[user]),
	}
}

// urlRE finds a sign-in URL in ssh's output.
var urlRE = regexp.MustCompile(`https?://[^\s"'<>]+`)

// signInSession runs remote as local on the server from user's laptop;
// each sign-in URL ssh shows is signed in at with signIn (nil: a URL fails
// the test). It returns what the command printed and the URLs.
func (s *sshMesh) signInSession(ctx context.Context, t *testing.T, user, local, remote string, signIn testmesh.SignIn) (string, []string) {
	t.Helper()
	sess := s.client(user, local).Start(ctx, t, remote)
	var urls []string
	for line := range sess.Lines() {
		u := urlRE.FindString(line)
		if u == "" {
			continue
		}
		urls = append(urls, u)
		if signIn == nil {
			t.Errorf("ssh as %s asked for a sign-in: %s", local, line)
			continue
		}
		if status, page := signIn(u); status != http.StatusOK {
			t.Errorf("sign-in at %s: %d %s", u, status, page)
		}
	}
	res, err := sess.Wait()
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("ssh %s@server %q: %+v, %v", local, remote, res, err)
	}
	return res.Stdout, urls
}

// sessions runs "warren-coordinator ssh sessions --json".
func (s *sshMesh) sessions(t *testing.T) []api.SSHSession {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"ssh", "sessions", "--json", "--state-dir", s.stateDir}, &out, os.Stderr); err != nil {
		t.Fatalf("ssh sessions --json: %v", err)
	}
	var list []api.SSHSession
	if err := json.Unmarshal(out.Bytes(), &list); err != nil {
		t.Fatalf("ssh sessions --json: %v: %s", err, out.Bytes())
	}
	return list
}

// sessionFor waits until the session list has an ended session as local
// (the end call may land just after ssh exits) and returns it.
func (s *sshMesh) sessionFor(t *testing.T, local string) api.SSHSession {
	t.Helper()
	return s.sessionWhere(t, "as "+local, func(e api.SSHSession) bool { return e.LocalUser == local })
}

// sessionWhere waits until the session list has an ended session that
// match accepts and returns it.
func (s *sshMesh) sessionWhere(t *testing.T, what string, match func(api.SSHSession) bool) api.SSHSession {
	t.Helper()
	var found api.SSHSession
	poll.UntilTrue(t, e2eWait, "the session "+what+" to be listed as ended", func() bool {
		for _, e := range s.sessions(t) {
			if match(e) && !e.Ended.IsZero() {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

// coordinatorCast waits until the coordinator's recording of session id
// holds want (the upload ends just after the session) and returns it.
func (s *sshMesh) coordinatorCast(ctx context.Context, t *testing.T, id, want string) []byte {
	t.Helper()
	var cast bytes.Buffer
	poll.UntilTrue(t, e2eWait, "the coordinator's recording to hold the output", func() bool {
		cast.Reset()
		if err := run(ctx, []string{"ssh", "recording", id, "--state-dir", s.stateDir}, &cast, os.Stderr); err != nil {
			t.Fatalf("ssh recording %s: %v", id, err)
		}
		out, err := castOutput(cast.Bytes())
		return err == nil && strings.Contains(out, want)
	})
	return cast.Bytes()
}

// checkCast parses a recording (and replays it with asciinema cat when
// installed) and checks that want is in its output.
func checkCast(t *testing.T, cast []byte, want string) {
	t.Helper()
	out, err := castOutput(cast)
	if err != nil || !strings.Contains(out, want) {
		t.Fatalf("recording: output %q lacks %q (%v)\n%s", out, want, err, cast)
	}
	if _, err := exec.LookPath("asciinema"); err != nil {
		t.Logf("asciinema not installed: the recording was only parsed (Debian: asciinema)")
		return
	}
	f := filepath.Join(t.TempDir(), "session.cast")
	if err := os.WriteFile(f, cast, 0o600); err != nil {
		t.Fatal(err)
	}
	// asciinema wants a terminal: give it a pseudo-terminal.
	ptm, err := pty.Start(exec.Command("asciinema", "cat", f))
	if err != nil {
		t.Fatalf("asciinema cat: %v", err)
	}
	defer ptm.Close()
	var replay bytes.Buffer
	_, _ = replay.ReadFrom(ptm) // until EIO: asciinema exited
	if !strings.Contains(replay.String(), want) {
		t.Fatalf("asciinema cat printed %q; it lacks %q", replay.String(), want)
	}
}

// cutWhenDisabled: carl's live session ends on the server when an admin
// disables carl, within 2 s (the bound; the measured time is
// logged): the session's processes are gone and the coordinator has its
// end. The ssh client on carl's laptop learns it only by its own
// keep-alives (ServerAliveInterval): the server can no longer send a
// packet to a device that left its netmap.
func (s *sshMesh) cutWhenDisabled(ctx context.Context, t *testing.T, local, uid string) {
	// The client waits for keep-alives that cannot be answered any more
	// once the server is cut off from carl's laptop: kill it at the end.
	cctx, kill := context.WithCancel(ctx)
	sess := s.client("carl", local).Start(cctx, t, "echo ready; exec sleep 120")
	defer func() {
		kill()
		_, _ = sess.Wait()
	}()
	poll.UntilTrue(t, e2eWait, "carl's session to start", func() bool { return strings.Contains(sess.Stdout(), "ready") })
	if n := processesOf(t, uid); n == 0 {
		t.Fatalf("no process of %s runs the session", local)
	}
	carl, err := s.m.Coord.Store().GetUserByName(context.Background(), "carl@example.com")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := s.m.Coord.Registry().SetUserDisabled(context.Background(), testmesh.Admin, carl.ID, true); err != nil {
		t.Fatal(err)
	}
	// Polled every 10 ms: the measurement is that coarse.
	poll.UntilTrue(t, e2eWait, "carl's session processes to end", func() bool { return processesOf(t, uid) == 0 })
	took := time.Since(start)
	t.Logf("carl's session processes ended %v after carl was disabled", took)
	if took > 2*time.Second {
		t.Errorf("carl's session ended %v after carl was disabled; want within 2 s", took)
	}
	ended := s.sessionFor(t, local)
	t.Logf("the coordinator's row of the cut session: %+v", ended)
	if !strings.Contains(ended.Reason, "left the netmap") {
		t.Errorf("the cut session's end does not say why: %+v", ended)
	}
}
