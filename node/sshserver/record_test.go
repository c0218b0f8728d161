package sshserver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/internal/asciicast"
	"github.com/warrenmesh/warren/internal/recording"
	"github.com/warrenmesh/warren/internal/wire"
)

// TestCheck: a check rule shows the coordinator's sign-in URL to the real
// ssh client and opens the session only once the sign-in is done; a
// failed sign-in refuses it with the coordinator's reason.
func TestCheck(t *testing.T) {
	check := accept(func(r *wire.SSHRule) { r.Action, r.CheckPeriod = wire.SSHCheck, wire.SSHCheckAlways })
	h := newHarness(t, netmap(check), nil)
	ctx := testContext(t)
	const url = "https://coord.test/ssh/sign-in/abc123"
	signedIn := make(chan bool)
	h.ctl.mu.Lock()
	h.ctl.check = func(ctx context.Context, onAuthURL func(string)) (*wire.SSHReply, error) {
		onAuthURL(url)
		select {
		case ok := <-signedIn:
			if !ok {
				return &wire.SSHReply{Code: wire.SSHDenied, Message: "signed in as bob@example.com, not alice@example.com"}, nil
			}
			return &wire.SSHReply{}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	h.ctl.mu.Unlock()
	for _, ok := range []bool{true, false} {
		s := h.client(h.user).Start(ctx, t, "id -un")
		for line := range s.Lines() {
			if strings.Contains(line, url) {
				break
			}
		}
		if s.Stdout() != "" {
			t.Fatalf("output before the sign-in: %q", s.Stdout())
		}
		signedIn <- ok
		res, err := s.Wait()
		switch {
		case err != nil:
			t.Fatal(err)
		case ok && (res.ExitCode != 0 || res.Stdout != h.user+"\n" || !strings.Contains(res.Stderr, "needs a fresh sign-in")):
			t.Fatalf("signed in: exit %d, stdout %q, stderr %q", res.ExitCode, res.Stdout, res.Stderr)
		case !ok && (res.ExitCode != 255 || res.Stdout != "" || !strings.Contains(res.Stderr, "signed in as bob@example.com")):
			t.Fatalf("sign-in failed: exit %d, stdout %q, stderr %q", res.ExitCode, res.Stdout, res.Stderr)
		}
		if c := h.ctl.next(t, wire.SSHOpCheck); c.Rule != "ssh[0]" || c.LocalUser != h.user || c.Src != laptop.ID {
			t.Errorf("check call %+v", c)
		}
	}
}

// TestRecording: a session whose rule requires a recording is streamed
// to the coordinator (with the URL and token its start reply gives) or
// to a recorder peer over the mesh, as a cast that parses and holds the
// session's output; with no recorder the session is refused, unless the
// rule fails open.
func TestRecording(t *testing.T) {
	dir, ts := recorderServer(t)
	recAddr := netip.AddrPortFrom(recNode.Addresses[0].Addr(), wire.RecorderPort)
	meshUp := func(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error) {
		if addr != recAddr {
			return nil, errors.New("no route to " + addr.String())
		}
		var d net.Dialer
		return d.DialContext(ctx, network, ts.Listener.Addr().String())
	}
	meshDown := func(context.Context, string, netip.AddrPort) (net.Conn, error) {
		return nil, errors.New("recorder offline")
	}
	toPeer := &wire.SSHRecording{Recorders: []wire.NodeID{recNode.ID}}
	tests := []struct {
		name      string
		record    *wire.SSHRecording
		dial      func(context.Context, string, netip.AddrPort) (net.Conn, error)
		coordURL  string
		recorder  string // the start call's Recorder; "" refused
		recorded  bool
		refusedOp string // the call that reports a refusal
	}{
		{"coordinator", &wire.SSHRecording{}, nil, ts.URL + "/v1/record", wire.RecordToCoordinator, true, ""},
		{"peer", toPeer, meshUp, "", recNode.Name, true, ""},
		{"peer offline", toPeer, meshDown, "", "", false, wire.SSHOpDeny},
		{"coordinator without recordings", &wire.SSHRecording{}, nil, "", "", false, wire.SSHOpEnd},
		{"recorder tags no peer carries", &wire.SSHRecording{RecorderTags: []string{"tag:rec"}}, nil, ts.URL + "/v1/record", "", false, wire.SSHOpDeny},
		{"peer offline, fail open", &wire.SSHRecording{Recorders: toPeer.Recorders, FailOpen: true}, meshDown, "", "", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, netmap(accept(func(r *wire.SSHRule) { r.Record = tt.record })), func(c *Config) { c.DialMesh = tt.dial })
			h.ctl.mu.Lock()
			h.ctl.recordURL = tt.coordURL
			h.ctl.mu.Unlock()
			before, _ := dir.List()
			res := h.client(h.user).Run(testContext(t), t, nil, "echo recorded-$((6*7))", "-tt")
			if tt.refusedOp != "" {
				if res.ExitCode == 0 || strings.Contains(res.Stdout, "recorded-42") || !strings.Contains(res.Stdout+res.Stderr, "must be recorded") {
					t.Fatalf("refused: exit %d, stdout %q, stderr %q", res.ExitCode, res.Stdout, res.Stderr)
				}
				if c := h.ctl.next(t, tt.refusedOp); !strings.Contains(c.Reason, "must be recorded") {
					t.Errorf("%s call %+v", tt.refusedOp, c)
				}
				return
			}
			if res.ExitCode != 0 || !strings.Contains(res.Stdout, "recorded-42") {
				t.Fatalf("exit %d, stdout %q, stderr %q", res.ExitCode, res.Stdout, res.Stderr)
			}
			start := h.ctl.next(t, wire.SSHOpStart)
			h.ctl.next(t, wire.SSHOpEnd)
			if start.Recorder != tt.recorder || start.Unrecorded == tt.recorded || tt.recorder == recNode.Name && start.Recording == "" {
				t.Fatalf("start call %+v", start)
			}
			after, err := dir.List()
			if err != nil {
				t.Fatal(err)
			}
			if !tt.recorded {
				if len(after) != len(before) {
					t.Fatalf("recordings %d, then %d", len(before), len(after))
				}
				return
			}
			var info *recording.Info
			for i := range after {
				if after[i].Meta.Session == start.Session {
					info = &after[i]
				}
			}
			if info == nil || !info.Complete || info.Meta.LocalUser != h.user || info.Meta.User != laptop.User {
				t.Fatalf("recording of %s: %+v in %+v", start.Session, info, after)
			}
			f, err := dir.Open(info.ID)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			hdr, events, err := asciicast.Parse(f)
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			for _, e := range events {
				if e.Type == asciicast.Output {
					out.WriteString(e.Data)
				}
			}
			if hdr.Width != 80 || hdr.Height != 24 || !strings.Contains(out.String(), "recorded-42") {
				t.Fatalf("cast %+v, output %q", hdr, out.String())
			}
		})
	}
}
