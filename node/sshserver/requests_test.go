package sshserver

import (
	"bufio"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/warrenmesh/warren/internal/asciicast"
	"github.com/warrenmesh/warren/internal/wire"
)

// dial logs in to h as login with Go's SSH client.
func (h *harness) dial(t *testing.T, login string) *ssh.Client {
	t.Helper()
	c, err := ssh.Dial("tcp", "127.0.0.1:"+strconv.Itoa(h.port), &ssh.ClientConfig{
		User: login, HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: wait,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRefusedRequests: what a rule never allows is refused on an
// admitted connection: remote forwarding, the sftp subsystem, agent and
// X11 forwarding, a second program on one session, and more sessions than
// the bound.
func TestRefusedRequests(t *testing.T) {
	h := newHarness(t, netmap(accept(func(r *wire.SSHRule) { r.PortForwarding = true })), func(c *Config) { c.MaxSessions = 2 })
	c := h.dial(t, h.user)
	if ln, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
		t.Error("remote forwarding allowed")
	}
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.RequestSubsystem("sftp"); err == nil {
		t.Error("sftp subsystem allowed")
	}
	for _, req := range []string{"auth-agent-req@openssh.com", "x11-req"} {
		if ok, err := s.SendRequest(req, true, nil); ok || err != nil {
			t.Errorf("%s: %v, %v; want refused", req, ok, err)
		}
	}
	s2, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s3, err := c.NewSession(); err == nil {
		s3.Close()
		t.Error("a session beyond MaxSessions opened")
	}
	exec := func(cmd string) bool {
		ok, err := s.SendRequest("exec", true, ssh.Marshal(struct{ Command string }{cmd}))
		return ok && err == nil
	}
	if !exec("cat") {
		t.Fatal("first program refused")
	}
	if exec("echo two") {
		t.Error("a second program on one session ran")
	}
}

// TestWindowChange: window changes reach the PTY (stty size follows) and
// the recording (a resize event).
func TestWindowChange(t *testing.T) {
	dir, ts := recorderServer(t)
	h := newHarness(t, netmap(accept(func(r *wire.SSHRule) { r.Record = &wire.SSHRecording{} })), nil)
	h.ctl.mu.Lock()
	h.ctl.recordURL = ts.URL + "/v1/record"
	h.ctl.mu.Unlock()
	c := h.dial(t, h.user)
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.RequestPty("xterm", 24, 80, ssh.TerminalModes{ssh.ECHO: 0}); err != nil {
		t.Fatal(err)
	}
	stdin, err := s.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := s.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	// size writes "size ROWS COLS" and returns it, read back from the
	// terminal (the shell's prompt and echo are skipped).
	size := func() string {
		t.Helper()
		if _, err := stdin.Write([]byte("echo size $(stty size)\n")); err != nil {
			t.Fatal(err)
		}
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("read the terminal: %v", err)
			}
			if i := strings.Index(line, "size "); i >= 0 && !strings.Contains(line, "$(") {
				return strings.TrimSpace(line[i:])
			}
		}
	}
	if got := size(); got != "size 24 80" {
		t.Fatalf("before: %q", got)
	}
	if err := s.WindowChange(30, 100); err != nil {
		t.Fatal(err)
	}
	if got := size(); got != "size 30 100" {
		t.Fatalf("after the window change: %q", got)
	}
	_, _ = stdin.Write([]byte("exit 0\n"))
	if err := s.Wait(); err != nil {
		t.Fatal(err)
	}
	start := h.ctl.next(t, wire.SSHOpStart)
	h.ctl.next(t, wire.SSHOpEnd)
	list, err := dir.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range list {
		if info.Meta.Session != start.Session {
			continue
		}
		f, err := dir.Open(info.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		_, events, err := asciicast.Parse(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			if e.Type == asciicast.Resize && e.Data == "100x30" {
				return
			}
		}
		t.Fatalf("no resize to 100x30 in %+v", events)
	}
	t.Fatalf("no recording of %s in %+v", start.Session, list)
}
