package control

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/login"
	"github.com/warrenmesh/warren/coordinator/netmap"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/policy"
	"github.com/warrenmesh/warren/internal/wire"
)

// SSH calls over the control channel, from the node that runs the SSH
// server (the destination). Like access calls, each runs on a goroutine
// of its own (at most wire.MaxSSHCalls per channel, more are refused with
// CodeSSHBusy) and the session waits for them before it ends.
//
// Every call is authorised against the nodes as they are now: the
// calling node must be active and Src its active peer. A check is
// evaluated with the policy here, never trusting the rule or period the
// node names: fresh when the source user's last sign-in with a second
// factor (store.User.MFAAt, which every sign-in with MFA stamps) is within
// the rule's checkPeriod; otherwise the source's user signs in again
// through the step-up flow (registry.BeginStepUp), which must end as that
// same user with MFA. Start and end write the ssh_sessions row and their
// audit event in one transaction; a start recorded by the coordinator
// gets a single-use token (stored hashed, never logged) and the URL to
// stream the cast to.

// Bounds of one SSH call.
const (
	sshCallTimeout = 30 * time.Second
	maxSSHField    = 1024 // command, reason, recorder, recording
	maxSSHName     = 64   // session ID, local user, rule
	// sshDenyAudits is how many ssh.deny events one node may cause per
	// minute; more are counted in the log, not stored.
	sshDenyAudits = 30
)

// RecordPath is where a node streams a session's cast to the coordinator
// (POST RecordPath + session, with the start reply's RecordToken).
const RecordPath = "/ssh/record/"

// RecordingPath is the admin API path of a session's recording held by the
// coordinator (the row's recording column).
func RecordingPath(session string) string { return "/api/v1/ssh/sessions/" + session + "/recording" }

// sshState is a channel's SSH call slots and deny-audit budget.
type sshState struct {
	slots chan struct{}
	mu    sync.Mutex
	since time.Time // start of the current deny-audit minute
	denys int
}

// allowDenyAudit reports whether another ssh.deny may be stored now.
func (st *sshState) allowDenyAudit(now time.Time) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if now.Sub(st.since) >= time.Minute {
		st.since, st.denys = now, 0
	}
	st.denys++
	return st.denys <= sshDenyAudits
}

// startSSH takes a slot for call and runs it on its own goroutine, or
// answers CodeSSHBusy at once when every slot is taken.
func (s *session) startSSH(ctx context.Context, id store.NodeID, call *wire.SSHCall) {
	select {
	case s.ssh.slots <- struct{}{}:
	default:
		s.replySSH(&wire.SSHReply{ID: call.ID, Code: wire.CodeSSHBusy,
			Message: fmt.Sprintf("too many SSH calls in flight (at most %d)", wire.MaxSSHCalls)})
		return
	}
	s.calls.Add(1)
	go func() {
		defer s.calls.Done()
		defer func() { <-s.ssh.slots }()
		s.replySSH(s.handleSSH(ctx, id, call))
	}()
}

func (s *session) replySSH(r *wire.SSHReply) {
	if err := s.write1(r); err != nil {
		_ = s.conn.Close()
	}
}

// handleSSH runs one call and returns its final reply.
func (s *session) handleSSH(ctx context.Context, id store.NodeID, call *wire.SSHCall) *wire.SSHReply {
	if msg := checkSSHCall(call); msg != "" {
		return &wire.SSHReply{ID: call.ID, Code: wire.SSHInvalid, Message: msg}
	}
	eng := s.srv.cfg.Engine
	dst, src, d, ok, err := eng.SSHDecide(wire.NodeID(id), call.Src, call.LocalUser)
	switch {
	case errors.Is(err, netmap.ErrUnknownNode):
		return &wire.SSHReply{ID: call.ID, Code: wire.SSHDenied, Message: "this node is not active"}
	case err != nil && call.Op != wire.SSHOpEnd && call.Op != wire.SSHOpDeny:
		return &wire.SSHReply{ID: call.ID, Code: wire.SSHDenied, Message: "the source is not a peer of this node"}
	}
	switch call.Op {
	case wire.SSHOpCheck:
		return s.sshCheck(ctx, id, call, dst, src, d, ok)
	case wire.SSHOpStart:
		if !ok {
			return &wire.SSHReply{ID: call.ID, Code: wire.SSHDenied, Message: "no ssh rule allows this login"}
		}
		return s.sshStart(ctx, id, call, dst, src, d)
	case wire.SSHOpEnd:
		return s.sshEnd(ctx, id, call)
	default: // wire.SSHOpDeny
		return s.sshDeny(ctx, id, call, dst, src)
	}
}

// who is the audit actor for a source node: its user, or its tags.
func who(n netmap.Node) string {
	if n.Wire.User != "" {
		return "user:" + n.Wire.User
	}
	if len(n.Wire.Tags) > 0 {
		return strings.Join(n.Wire.Tags, ",")
	}
	return fmt.Sprintf("node:%d", n.ID())
}

// sshCheck answers a check: ok when the source user signed in with MFA
// within the check rule's period, else after a fresh sign-in as that
// user.
func (s *session) sshCheck(ctx context.Context, id store.NodeID, call *wire.SSHCall, dst, src netmap.Node, d policy.SSHDecision, ok bool) *wire.SSHReply {
	ev := audit.Event{Actor: who(src), Action: "ssh.check", Target: fmt.Sprintf("node:%d", id), Remote: s.remote,
		Detail: map[string]any{"node": dst.Wire.Name, "src": src.Wire.Name, "localUser": call.LocalUser}}
	fail := func(code, msg string) *wire.SSHReply {
		ev.Outcome = audit.Denied
		ev.Detail["result"] = "failed"
		ev.Detail["reason"] = msg
		_ = s.srv.cfg.Audit.Record(ctx, ev)
		return &wire.SSHReply{ID: call.ID, Code: code, Message: msg}
	}
	if !ok || !d.Check {
		return fail(wire.SSHDenied, "no check rule applies to this login now")
	}
	ev.Detail["rule"] = d.Rule
	if src.Tagged() || src.Wire.User == "" {
		return fail(wire.SSHDenied, "a tagged device has no user to sign in")
	}
	now := time.Now()
	if d.CheckPeriod > 0 && !src.MFAAt.IsZero() && now.Sub(src.MFAAt) <= d.CheckPeriod {
		ev.Detail["result"] = "fresh"
		if err := s.srv.cfg.Audit.Record(ctx, ev); err != nil {
			return &wire.SSHReply{ID: call.ID, Code: wire.SSHFailed, Message: "the coordinator could not record the check"}
		}
		return &wire.SSHReply{ID: call.ID}
	}
	ctx, cancel := context.WithTimeout(ctx, stepUpTimeout)
	defer cancel()
	reg := s.srv.cfg.Registry
	su, err := reg.BeginStepUp(ctx, store.NodeID(src.ID()), s.remote)
	if err != nil {
		return fail(sshStepUpCode(err), sshStepUpMessage(err))
	}
	if err := s.write1(&wire.SSHReply{ID: call.ID, Code: wire.SSHAuthRequired, AuthURL: su.URL,
		Message: "sign in again as " + src.Wire.User + " to open this SSH session"}); err != nil {
		_ = s.conn.Close()
		return &wire.SSHReply{ID: call.ID, Code: wire.SSHFailed}
	}
	if _, err := reg.WaitStepUp(ctx, store.NodeID(src.ID()), su, s.remote); err != nil {
		return fail(sshStepUpCode(err), sshStepUpMessage(err))
	}
	// The sign-in may have taken minutes: the login must still be allowed.
	if _, _, d2, ok2, err := s.srv.cfg.Engine.SSHDecide(wire.NodeID(id), call.Src, call.LocalUser); err != nil || !ok2 || !d2.Check {
		return fail(wire.SSHDenied, "the policy no longer allows this login")
	}
	ev.Detail["result"] = "signed-in"
	if err := s.srv.cfg.Audit.Record(ctx, ev); err != nil {
		return &wire.SSHReply{ID: call.ID, Code: wire.SSHFailed, Message: "the coordinator could not record the check"}
	}
	return &wire.SSHReply{ID: call.ID}
}

// sshStepUpCode and sshStepUpMessage say why a check's sign-in failed.
func sshStepUpCode(err error) string {
	switch {
	case errors.Is(err, registry.ErrForbidden), errors.Is(err, registry.ErrLoginFailed), errors.Is(err, registry.ErrStepUpNoMFA):
		return wire.SSHDenied
	}
	return wire.SSHFailed
}

func sshStepUpMessage(err error) string {
	switch {
	case errors.Is(err, registry.ErrStepUpWrongUser):
		return "signed in as someone other than the user of the connecting device"
	case errors.Is(err, registry.ErrStepUpNoMFA), errors.Is(err, registry.ErrForbidden), errors.Is(err, registry.ErrLoginFailed):
		return err.Error()
	case errors.Is(err, login.ErrNoLogin):
		return "this coordinator has no interactive sign-in for check rules"
	case errors.Is(err, login.ErrTooManyLogins), errors.Is(err, login.ErrProviderUnavailable):
		return err.Error()
	}
	return "the coordinator could not start the sign-in; try again"
}

// sshStart stores the session and its audit event; recorded by the
// coordinator, it also answers where to stream the cast, with a
// single-use token.
func (s *session) sshStart(ctx context.Context, id store.NodeID, call *wire.SSHCall, dst, src netmap.Node, d policy.SSHDecision) *wire.SSHReply {
	row := store.SSHSession{ID: call.Session, Node: id, NodeName: dst.Wire.Name, Src: store.NodeID(src.ID()), SrcName: src.Wire.Name,
		LocalUser: call.LocalUser, Rule: d.Rule, Command: call.Command, PTY: call.PTY,
		Recorder: call.Recorder, Recording: call.Recording, Unrecorded: call.Unrecorded, Started: time.Now(), ExitCode: -1}
	if call.SrcAddr.IsValid() {
		row.SrcAddr = call.SrcAddr.String()
	}
	if !src.Tagged() {
		row.User, row.Login = store.UserID(src.UserID), src.Wire.User
	} else {
		row.Login = strings.Join(src.Wire.Tags, ",")
	}
	reply := &wire.SSHReply{ID: call.ID}
	token := ""
	if call.Recorder == wire.RecordToCoordinator {
		var b [32]byte
		_, _ = rand.Read(b[:])
		token = hex.EncodeToString(b[:])
		row.Recording = RecordingPath(call.Session)
		reply.RecordURL = strings.TrimSuffix(s.srv.cfg.PublicURL, "/") + RecordPath + call.Session
		reply.RecordToken = token
	}
	ev := audit.Event{Actor: who(src), Action: "ssh.session.start", Target: fmt.Sprintf("node:%d", id), Remote: s.remote,
		Detail: map[string]any{"session": row.ID, "node": row.NodeName, "src": row.SrcName, "localUser": row.LocalUser,
			"rule": row.Rule, "command": audit.Truncate(row.Command, 256), "pty": row.PTY, "recorder": row.Recorder, "unrecorded": row.Unrecorded}}
	cctx, cancel := context.WithTimeout(ctx, sshCallTimeout)
	defer cancel()
	err := s.srv.cfg.Audit.Commit(cctx, func(tx *audit.Tx) error {
		if err := tx.CreateSSHSession(cctx, row, token); err != nil {
			return err
		}
		tx.Record(ev)
		return nil
	})
	if errors.Is(err, store.ErrConflict) {
		return &wire.SSHReply{ID: call.ID, Code: wire.SSHInvalid, Message: "session ID already used"}
	}
	if err != nil {
		s.log.Warn("ssh session start not stored", "node", id, "session", call.Session, "err", err)
		return &wire.SSHReply{ID: call.ID, Code: wire.SSHFailed, Message: "the coordinator could not record the session start"}
	}
	return reply
}

// sshEnd completes the session's row and audits its end.
func (s *session) sshEnd(ctx context.Context, id store.NodeID, call *wire.SSHCall) *wire.SSHReply {
	row := store.SSHSession{ID: call.Session, Node: id, Ended: time.Now(), Duration: call.Duration, ExitCode: call.ExitCode, Reason: call.Reason}
	cctx, cancel := context.WithTimeout(ctx, sshCallTimeout)
	defer cancel()
	err := s.srv.cfg.Audit.Commit(cctx, func(tx *audit.Tx) error {
		old, err := tx.GetSSHSession(cctx, call.Session)
		if err != nil || old.Node != id {
			return store.ErrNotFound
		}
		if err := tx.EndSSHSession(cctx, row); err != nil {
			return err
		}
		tx.Record(audit.Event{Actor: actorOf(old), Action: "ssh.session.end", Target: fmt.Sprintf("node:%d", id), Remote: s.remote,
			Detail: map[string]any{"session": old.ID, "node": old.NodeName, "src": old.SrcName, "localUser": old.LocalUser,
				"duration": call.Duration.String(), "exitCode": call.ExitCode, "reason": call.Reason}})
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return &wire.SSHReply{ID: call.ID, Code: wire.SSHInvalid, Message: "no open session " + call.Session + " on this node"}
	}
	if err != nil {
		s.log.Warn("ssh session end not stored", "node", id, "session", call.Session, "err", err)
		return &wire.SSHReply{ID: call.ID, Code: wire.SSHFailed, Message: "the coordinator could not record the session end"}
	}
	return &wire.SSHReply{ID: call.ID}
}

// actorOf is the audit actor of a stored session.
func actorOf(r store.SSHSession) string {
	if r.User != 0 {
		return "user:" + r.Login
	}
	return r.Login
}

// sshDeny audits a refused login, at most sshDenyAudits per minute.
func (s *session) sshDeny(ctx context.Context, id store.NodeID, call *wire.SSHCall, dst, src netmap.Node) *wire.SSHReply {
	if !s.ssh.allowDenyAudit(time.Now()) {
		s.log.Info("ssh.deny not stored: over the per-node budget", "node", id)
		return &wire.SSHReply{ID: call.ID}
	}
	actor := fmt.Sprintf("node:%d", call.Src)
	if src.ID() != 0 {
		actor = who(src)
	}
	_ = s.srv.cfg.Audit.Record(ctx, audit.Event{Actor: actor, Action: "ssh.deny", Target: fmt.Sprintf("node:%d", id), Remote: s.remote,
		Outcome: audit.Denied, Detail: map[string]any{"node": dst.Wire.Name, "src": src.Wire.Name, "localUser": call.LocalUser,
			"rule": call.Rule, "reason": call.Reason}})
	return &wire.SSHReply{ID: call.ID}
}

// checkSSHCall returns why call is malformed, or "".
func checkSSHCall(call *wire.SSHCall) string {
	switch {
	case len(call.Command) > maxSSHField*4, len(call.Reason) > maxSSHField, len(call.Recorder) > maxSSHField, len(call.Recording) > maxSSHField:
		return "a field is too long"
	case len(call.LocalUser) > maxSSHName, len(call.Rule) > maxSSHName, len(call.Session) > maxSSHName:
		return "a name is too long"
	case call.Duration < 0:
		return "negative duration"
	}
	switch call.Op {
	case wire.SSHOpCheck, wire.SSHOpDeny:
	case wire.SSHOpStart, wire.SSHOpEnd:
		if !validSessionID(call.Session) {
			return `a session ID is "ssh-" and hex digits`
		}
	default:
		return fmt.Sprintf("unknown SSH operation %q", call.Op)
	}
	if call.Op != wire.SSHOpEnd && call.LocalUser == "" {
		return "no local user"
	}
	return ""
}

// validSessionID reports whether id is "ssh-" and 8 to 60 hex digits: safe
// in a URL path and as a file name.
func validSessionID(id string) bool {
	h, ok := strings.CutPrefix(id, "ssh-")
	if !ok || len(h) < 8 || len(h) > 60 {
		return false
	}
	for _, c := range h {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
