package control

import (
	"strings"
	"testing"

	"github.com/warrenmesh/warren/internal/wire"
)

// nextSSH returns the node's next SSH reply, skipping netmap traffic.
func (n *node) nextSSH() *wire.SSHReply {
	n.t.Helper()
	for {
		switch m := n.recv().(type) {
		case *wire.SSHReply:
			return m
		case *wire.KeepAlive, *wire.MapResponse:
		default:
			n.t.Fatalf("want an SSH reply, got %T", m)
		}
	}
}

// TestSSHCallMalformed: malformed calls are answered SSHInvalid, calls
// about a node that is not the caller's peer SSHDenied; the channel stays
// up.
func TestSSHCallMalformed(t *testing.T) {
	h := newHarness(t, Config{})
	n := h.join("192.0.2.1:41641")
	for i, c := range []wire.SSHCall{
		{Op: "shell-as-root"},
		{Op: wire.SSHOpCheck, Src: 2},
		{Op: wire.SSHOpStart, Src: 2, LocalUser: "ann", Session: "../../etc/passwd"},
		{Op: wire.SSHOpStart, Src: 2, LocalUser: "ann", Session: "ssh-XYZ12345"},
		{Op: wire.SSHOpEnd, Session: "ssh-1"},
		{Op: wire.SSHOpDeny, Src: 2, LocalUser: strings.Repeat("u", 100)},
		{Op: wire.SSHOpEnd, Session: "ssh-0123456789", Duration: -1},
	} {
		c.ID = uint64(100 + i)
		n.send(&c)
		if r := n.nextSSH(); r.ID != c.ID || r.Code != wire.SSHInvalid || r.Message == "" {
			t.Errorf("call %+v: reply %+v, want invalid", c, r)
		}
	}
	n.send(&wire.SSHCall{ID: 1, Op: wire.SSHOpCheck, Src: 999, LocalUser: "root"})
	if r := n.nextSSH(); r.ID != 1 || r.Code != wire.SSHDenied {
		t.Fatalf("check about a node that is no peer: %+v", r)
	}
}

// FuzzSSHCall decodes arbitrary SSHCall payloads as the channel does and
// checks them: no input panics, and every call checkSSHCall lets through
// has a known op, a local user unless it ends a session, a session ID
// safe in a URL and a file name for start and end, and fields within
// their bounds.
func FuzzSSHCall(f *testing.F) {
	for _, s := range []string{
		`{"id":1,"op":"check","src":3,"localUser":"root","rule":"ssh[0]"}`,
		`{"id":2,"op":"start","session":"ssh-0123456789abcdef","src":3,"localUser":"ann","recorder":"coordinator","pty":true}`,
		`{"id":3,"op":"end","session":"ssh-0123456789abcdef","duration":3000000000,"exitCode":0}`,
		`{"id":4,"op":"deny","src":3,"localUser":"root","reason":"no rule"}`,
		`{"op":"start","session":"ssh-../../x","localUser":"a"}`,
		`{"op":"end","session":"ssh-ABCDEF0123","duration":-5}`,
		`[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, err := wire.Decode(wire.TypeSSHCall, payload)
		if err != nil {
			return
		}
		call, ok := m.(*wire.SSHCall)
		if !ok {
			t.Fatalf("decoded %T", m)
		}
		if checkSSHCall(call) != "" {
			return
		}
		if len(call.LocalUser) > maxSSHName || len(call.Rule) > maxSSHName || len(call.Session) > maxSSHName ||
			len(call.Reason) > maxSSHField || len(call.Command) > 4*maxSSHField || call.Duration < 0 {
			t.Fatalf("out of bounds call accepted: %+v", call)
		}
		switch call.Op {
		case wire.SSHOpStart, wire.SSHOpEnd:
			if !strings.HasPrefix(call.Session, "ssh-") || strings.ContainsAny(call.Session, "/.\\%?#") {
				t.Fatalf("unsafe session ID accepted: %q", call.Session)
			}
		case wire.SSHOpCheck, wire.SSHOpDeny:
		default:
			t.Fatalf("unknown op %q accepted", call.Op)
		}
		if call.Op != wire.SSHOpEnd && call.LocalUser == "" {
			t.Fatalf("%s without a local user accepted", call.Op)
		}
	})
}
