package sshserver

import (
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/wire"
)

// TestLogin runs the real OpenSSH client: a peer whose rule accepts
// autogroup:nonroot logs in as the mapped user and runs a command as
// that user; root, an unknown user, a peer without a rule and an address
// that is no peer are refused with a reason, and the coordinator hears of
// the refusals.
func TestLogin(t *testing.T) {
	h := newHarness(t, netmap(accept(nil)), nil)
	ctx := testContext(t)

	res := h.client(h.user).Run(ctx, t, nil, "id -un; echo $HOME $USER")
	if res.ExitCode != 0 || !strings.HasPrefix(res.Stdout, h.user+"\n/home/") || !strings.Contains(res.Stdout, " "+h.user) {
		t.Fatalf("login as %s: exit %d, stdout %q, stderr %q", h.user, res.ExitCode, res.Stdout, res.Stderr)
	}
	start := h.ctl.next(t, wire.SSHOpStart)
	end := h.ctl.next(t, wire.SSHOpEnd)
	if start.Src != laptop.ID || start.LocalUser != h.user || start.Rule != "ssh[0]" || !strings.HasPrefix(start.Session, "ssh-") ||
		end.Session != start.Session || end.ExitCode != 0 || end.Reason != "" {
		t.Errorf("start %+v, end %+v", start, end)
	}

	refused := []struct {
		name, login string
		nm          func() // changes the netmap first
		want        string
	}{
		{"root", "root", nil, `no ssh rule lets laptop (alice@example.com) log in as "root"`},
		{"unknown user", "wtnosuchuser", nil, `no local user "wtnosuchuser"`},
		{"no rule", h.user, func() {
			h.srv.SetNetmap(netmap(accept(func(r *wire.SSHRule) { r.Sources = []wire.NodeID{recNode.ID} })))
		}, "no ssh rule lets laptop"},
		{"not a peer", h.user, func() {
			nm := netmap(accept(nil))
			nm.Peers = nm.Peers[1:]
			h.srv.SetNetmap(nm)
		}, "127.0.0.1 is not a peer of this node"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			if tt.nm != nil {
				tt.nm()
			}
			res := h.client(tt.login).Run(ctx, t, nil, "id -un")
			if res.ExitCode != 255 || res.Stdout != "" || !strings.Contains(res.Stderr, "warren: "+tt.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want refused with %q", res.ExitCode, res.Stdout, res.Stderr, tt.want)
			}
			if tt.name != "not a peer" {
				if deny := h.ctl.next(t, wire.SSHOpDeny); deny.LocalUser != tt.login || !strings.Contains(deny.Reason, tt.want) {
					t.Errorf("deny call %+v", deny)
				}
			}
		})
	}
}

// TestPTYAndEnv: a terminal session (ssh -tt) runs as the user with TERM
// and the accepted variables, reports the exit status; variables the rule
// does not accept never reach it.
func TestPTYAndEnv(t *testing.T) {
	h := newHarness(t, netmap(accept(func(r *wire.SSHRule) { r.AcceptEnv = []string{"LC_*"} })), nil)
	ctx := testContext(t)
	c := h.client(h.user)
	c.Options = []string{"SetEnv=LC_WARREN=yes OTHER=no"}
	c.Env = []string{"TERM=vt100"}
	res := c.Run(ctx, t, nil, `tty; echo "term=$TERM lc=$LC_WARREN other=$OTHER"; id -un; exit 3`, "-tt")
	if res.ExitCode != 3 || !strings.Contains(res.Stdout, "/dev/pts/") || !strings.Contains(res.Stdout, "term=vt100 lc=yes other=\r\n"+h.user) {
		t.Fatalf("pty session: exit %d, stdout %q, stderr %q", res.ExitCode, res.Stdout, res.Stderr)
	}
	if start := h.ctl.next(t, wire.SSHOpStart); !start.PTY {
		t.Errorf("start call without PTY: %+v", start)
	}
	// A login shell reads its commands from the terminal.
	res = c.Run(ctx, t, strings.NewReader("echo shell-$((40+2))\nexit 0\n"), "", "-tt")
	if res.ExitCode != 0 || !strings.Contains(res.Stdout, "shell-42") {
		t.Fatalf("login shell: exit %d, stdout %q, stderr %q", res.ExitCode, res.Stdout, res.Stderr)
	}
}

// TestPortForwarding: local forwarding (ssh -W, a direct-tcpip channel)
// is refused unless the rule has portForwarding; then it reaches the
// target from the host.
func TestPortForwarding(t *testing.T) {
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		for {
			c, err := target.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, "hello from the target\n")
			c.Close()
		}
	}()
	defer func() { target.Close(); <-served }()
	dst := "127.0.0.1:" + strconv.Itoa(target.Addr().(*net.TCPAddr).Port)
	for _, allowed := range []bool{false, true} {
		t.Run("allowed="+strconv.FormatBool(allowed), func(t *testing.T) {
			h := newHarness(t, netmap(accept(func(r *wire.SSHRule) { r.PortForwarding = allowed })), nil)
			res := h.client(h.user).Run(testContext(t), t, nil, "", "-W", dst)
			if allowed && (res.ExitCode != 0 || res.Stdout != "hello from the target\n") {
				t.Fatalf("forwarding allowed: exit %d, stdout %q, stderr %q", res.ExitCode, res.Stdout, res.Stderr)
			}
			if !allowed && (res.ExitCode == 0 || res.Stdout != "" || !strings.Contains(res.Stderr, "prohibited")) {
				t.Fatalf("forwarding not allowed: exit %d, stdout %q, stderr %q", res.ExitCode, res.Stdout, res.Stderr)
			}
		})
	}
}

// TestCut: a session ends when its peer leaves the netmap (as when its
// user is disabled), within 2 s (the bound), and the end call
// says why; another whose rule changed ends too.
func TestCut(t *testing.T) {
	tests := []struct {
		name   string
		reason string
	}{
		{"peer left", "peer left the netmap"},
		{"rule gone", "the policy no longer allows it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nm := netmap(accept(nil))
			h := newHarness(t, nm, nil)
			ctx := testContext(t)
			s := h.client(h.user).Start(ctx, t, "echo started; sleep 60")
			h.ctl.next(t, wire.SSHOpStart)
			poll.UntilTrue(t, wait, "the session's output", func() bool { return strings.Contains(s.Stdout(), "started") })
			next := netmap(accept(nil))
			if tt.name == "peer left" {
				next.Peers = next.Peers[1:]
			} else {
				next.SSH.Rules = nil
			}
			cutAt := time.Now()
			h.srv.SetNetmap(next)
			end := h.ctl.next(t, wire.SSHOpEnd)
			took := time.Since(cutAt)
			res, err := s.Wait()
			t.Logf("session cut %v after the netmap change", took)
			if err != nil || res.ExitCode != 255 || !strings.Contains(res.Stdout, "started") {
				t.Fatalf("ssh after the cut: exit %d, %v, stdout %q, stderr %q", res.ExitCode, err, res.Stdout, res.Stderr)
			}
			if !strings.Contains(res.Stderr, "warren: session ended: "+tt.reason) {
				t.Errorf("the client was not told why: stderr %q", res.Stderr)
			}
			if !strings.Contains(end.Reason, tt.reason) || end.ExitCode != -1 {
				t.Errorf("end call %+v, want reason %q", end, tt.reason)
			}
			if took > 2*time.Second {
				t.Errorf("session cut after %v, want within 2s", took)
			}
		})
	}
}

// TestEndAfterStart: a session's end is reported only once its start
// report is done, however short the session and slow the coordinator.
func TestEndAfterStart(t *testing.T) {
	h := newHarness(t, netmap(accept(nil)), nil)
	gate := make(chan struct{})
	var open sync.Once
	t.Cleanup(func() { open.Do(func() { close(gate) }) }) // before the server closes
	h.ctl.mu.Lock()
	h.ctl.startGate = gate
	h.ctl.mu.Unlock()
	res := h.client(h.user).Run(testContext(t), t, nil, "true")
	if res.ExitCode != 0 {
		t.Fatalf("exit %d, stderr %q", res.ExitCode, res.Stderr)
	}
	h.ctl.next(t, wire.SSHOpStart)
	// Once the connection is gone on the server too, the session is over
	// and its end report scheduled, its start still unanswered: no end
	// call yet.
	poll.UntilTrue(t, wait, "the connection gone", func() bool {
		h.srv.mu.Lock()
		defer h.srv.mu.Unlock()
		return len(h.srv.conns) == 0
	})
	if ops := h.ctl.ops(); strings.Join(ops, ",") != wire.SSHOpStart {
		t.Fatalf("calls %q while the start is unanswered", ops)
	}
	open.Do(func() { close(gate) })
	if end := h.ctl.next(t, wire.SSHOpEnd); end.ExitCode != 0 {
		t.Fatalf("end call %+v", end)
	}
}
