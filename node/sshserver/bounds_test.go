package sshserver

import (
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/wire"
)

// TestBounds: connections beyond MaxConns are closed at once, and one
// that never completes the handshake is closed after HandshakeTimeout.
func TestBounds(t *testing.T) {
	dial := func(h *harness) (net.Conn, string) {
		t.Helper()
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(h.port))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(wait))
		buf := make([]byte, 256)
		n, _ := c.Read(buf)
		return c, string(buf[:n])
	}
	full := newHarness(t, netmap(accept(nil)), func(c *Config) { c.MaxConns, c.HandshakeTimeout = 1, time.Hour })
	if _, banner := dial(full); !strings.HasPrefix(banner, "SSH-2.0-Warren") {
		t.Fatalf("first connection: banner %q", banner)
	}
	if _, banner := dial(full); banner != "" {
		t.Fatalf("connection beyond MaxConns: banner %q, want closed", banner)
	}

	slow := newHarness(t, netmap(accept(nil)), func(c *Config) { c.HandshakeTimeout = 300 * time.Millisecond })
	idle, banner := dial(slow)
	if !strings.HasPrefix(banner, "SSH-2.0-Warren") {
		t.Fatalf("banner %q", banner)
	}
	if _, err := io.ReadAll(idle); err != nil {
		t.Fatalf("the idle connection ended with %v, want closed by the server", err)
	}
}

// TestNotRoot: a server that does not run as root logs peers in only as
// its own user, and says so.
func TestNotRoot(t *testing.T) {
	h := newHarnessPrep(t, netmap(accept(nil)), nil, func(s *Server) {
		s.root, s.self = false, &account{name: "warrend-user", uid: 4242}
	})
	res := h.client(h.user).Run(testContext(t), t, nil, "id -un")
	if res.ExitCode != 255 || res.Stdout != "" || !strings.Contains(res.Stderr, `it can only log in as "warrend-user"`) {
		t.Fatalf("exit %d, stdout %q, stderr %q", res.ExitCode, res.Stdout, res.Stderr)
	}
}

// TestRecordingBreaks: when the upload of a fail-closed recording breaks
// mid-session, the session ends, saying why.
func TestRecordingBreaks(t *testing.T) {
	_, ts := recorderServer(t)
	h := newHarness(t, netmap(accept(func(r *wire.SSHRule) { r.Record = &wire.SSHRecording{} })), nil)
	h.ctl.mu.Lock()
	h.ctl.recordURL = ts.URL + "/v1/record"
	h.ctl.mu.Unlock()
	s := h.client(h.user).Start(testContext(t), t, "echo started; sleep 60")
	poll.UntilTrue(t, wait, "the session's output", func() bool { return strings.Contains(s.Stdout(), "started") })
	ts.CloseClientConnections()
	end := h.ctl.next(t, wire.SSHOpEnd)
	res, err := s.Wait()
	if err != nil || res.ExitCode != 255 || !strings.Contains(res.Stderr, "session ended: the recording broke off") {
		t.Fatalf("exit %d, %v, stderr %q", res.ExitCode, err, res.Stderr)
	}
	if end.Reason != "the recording broke off" || end.ExitCode != -1 {
		t.Fatalf("end call %+v", end)
	}
}
