package control

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/warrenmesh/warren/coordinator/access"
	"github.com/warrenmesh/warren/coordinator/login"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/wire"
)

// Just-in-time access calls over the control channel. The reader hands
// each AccessCall to a goroutine of its own (at most wire.MaxAccessCalls
// per channel; more are refused at once with CodeAccessBusy), so a slow
// call or a step-up sign-in never holds up the channel; the session waits
// for them before it ends. Replies share the connection with the netmap
// writer: noise.Conn writes each frame whole, whoever calls.

// Bounds of one access call: an ordinary call, and one that waits for a
// step-up sign-in (the login table ends the sign-in itself sooner; this
// only backs it up).
const (
	accessCallTimeout = 30 * time.Second
	stepUpTimeout     = login.DefaultTimeout + time.Minute
)

// accessAPI is what the channel asks of the access service
// (*access.Service).
type accessAPI interface {
	Request(ctx context.Context, c access.Caller, dst string, d time.Duration, reason string) (wire.AccessRequest, error)
	Approve(ctx context.Context, c access.Caller, id string, d time.Duration) (wire.AccessRequest, error)
	Deny(ctx context.Context, c access.Caller, id, reason string) (wire.AccessRequest, error)
	Cancel(ctx context.Context, c access.Caller, id string) (wire.AccessRequest, error)
	Revoke(ctx context.Context, c access.Caller, id, reason string) (wire.AccessRequest, error)
	List(ctx context.Context, c access.Caller, pending bool) ([]wire.AccessRequest, error)
}

// errAccessDisabled answers every call when the coordinator runs without
// the access service.
const errAccessDisabled = "just-in-time access is not enabled on this coordinator"

// startAccess takes a slot for call and runs it on its own goroutine, or
// answers CodeAccessBusy at once when every slot is taken.
func (s *session) startAccess(ctx context.Context, id store.NodeID, call *wire.AccessCall) {
	select {
	case s.access <- struct{}{}:
	default:
		s.reply(&wire.AccessReply{ID: call.ID, Code: wire.CodeAccessBusy,
			Message: fmt.Sprintf("too many access calls in flight (at most %d): wait for one to finish", wire.MaxAccessCalls)})
		return
	}
	s.calls.Add(1)
	go func() {
		defer s.calls.Done()
		defer func() { <-s.access }()
		s.reply(s.handleAccess(ctx, id, call))
	}()
}

// reply writes r; a failed write fails the channel, which the reader
// notices.
func (s *session) reply(r *wire.AccessReply) {
	if err := s.write1(r); err != nil {
		_ = s.conn.Close()
	}
}

// write1 writes one message to the node.
func (s *session) write1(m wire.Message) error { return wire.WriteMessage(s.conn, m) }

// handleAccess runs one call and returns its final reply. A request
// refused for stale MFA, and the step-up op, first send the node a
// sign-in URL and wait for the sign-in.
func (s *session) handleAccess(ctx context.Context, id store.NodeID, call *wire.AccessCall) *wire.AccessReply {
	svc := s.srv.access
	if svc == nil {
		return &wire.AccessReply{ID: call.ID, Code: wire.AccessFailed, Message: errAccessDisabled}
	}
	if msg := checkCall(call); msg != "" {
		return &wire.AccessReply{ID: call.ID, Code: wire.AccessInvalid, Message: msg}
	}
	cctx, cancel := context.WithTimeout(ctx, accessCallTimeout)
	defer cancel()
	caller := access.Caller{Node: id}
	var (
		one  wire.AccessRequest
		list []wire.AccessRequest
		err  error
	)
	switch call.Op {
	case wire.AccessOpStepUp:
		if err := s.stepUp(ctx, id, call.ID); err != nil {
			return accessReply(call.ID, nil, err)
		}
		return &wire.AccessReply{ID: call.ID, Message: "MFA refreshed"}
	case wire.AccessOpRequest:
		one, err = svc.Request(cctx, caller, call.Dst, call.For, call.Reason)
		if access.Code(err) == wire.AccessMFARequired {
			cancel()
			if serr := s.stepUp(ctx, id, call.ID); serr != nil {
				return accessReply(call.ID, nil, serr)
			}
			rctx, rcancel := context.WithTimeout(ctx, accessCallTimeout)
			defer rcancel()
			one, err = svc.Request(rctx, caller, call.Dst, call.For, call.Reason)
		}
	case wire.AccessOpList:
		list, err = svc.List(cctx, caller, call.Pending)
	case wire.AccessOpCancel:
		one, err = svc.Cancel(cctx, caller, call.Request)
	case wire.AccessOpApprove:
		one, err = svc.Approve(cctx, caller, call.Request, call.For)
	case wire.AccessOpDeny:
		one, err = svc.Deny(cctx, caller, call.Request, call.Reason)
	case wire.AccessOpRevoke:
		one, err = svc.Revoke(cctx, caller, call.Request, call.Reason)
	}
	if err != nil {
		if access.Code(err) == wire.AccessFailed {
			s.log.Warn("access call failed", "node", id, "op", call.Op, "err", err)
		}
		return accessReply(call.ID, nil, err)
	}
	if call.Op != wire.AccessOpList {
		list = []wire.AccessRequest{one}
	}
	return accessReply(call.ID, list, nil)
}

// stepUp sends the node a sign-in URL for its owner (reply callID, Code
// AccessMFARequired) and waits until the owner signed in there with MFA.
func (s *session) stepUp(ctx context.Context, id store.NodeID, callID uint64) error {
	ctx, cancel := context.WithTimeout(ctx, stepUpTimeout)
	defer cancel()
	reg := s.srv.cfg.Registry
	su, err := reg.BeginStepUp(ctx, id, s.remote)
	if err != nil {
		return stepUpError(err)
	}
	if err := s.write1(&wire.AccessReply{ID: callID, Code: wire.AccessMFARequired, AuthURL: su.URL,
		Message: "sign in again with MFA to continue"}); err != nil {
		_ = s.conn.Close()
		return err
	}
	if _, err := reg.WaitStepUp(ctx, id, su, s.remote); err != nil {
		return stepUpError(err)
	}
	return nil
}

// stepUpError gives a step-up failure its access code.
func stepUpError(err error) error {
	switch {
	case errors.Is(err, registry.ErrStepUpNoMFA):
		return &access.Error{Code: wire.AccessMFARequired, Message: err.Error()}
	case errors.Is(err, registry.ErrForbidden), errors.Is(err, registry.ErrLoginFailed):
		return &access.Error{Code: wire.AccessForbidden, Message: err.Error()}
	case errors.Is(err, login.ErrNoLogin):
		return &access.Error{Code: wire.AccessFailed, Message: "this coordinator has no interactive sign-in to refresh MFA with"}
	case errors.Is(err, login.ErrTooManyLogins), errors.Is(err, login.ErrProviderUnavailable):
		return &access.Error{Code: wire.AccessFailed, Message: err.Error()}
	}
	return err
}

// accessReply is the final reply to call id: the requests, or err's code
// and message (a failure that is not an *access.Error says only that the
// coordinator failed: its text may hold internals).
func accessReply(id uint64, reqs []wire.AccessRequest, err error) *wire.AccessReply {
	if err == nil {
		return &wire.AccessReply{ID: id, Requests: reqs}
	}
	var ae *access.Error
	if errors.As(err, &ae) {
		return &wire.AccessReply{ID: id, Code: ae.Code, Message: ae.Message}
	}
	return &wire.AccessReply{ID: id, Code: wire.AccessFailed, Message: "the coordinator failed to do that; try again"}
}

// Bounds of a call's fields (the frame limit bounds them too; these keep
// them to what a person types).
const (
	maxAccessDst    = 256
	maxAccessReason = 1024
	maxAccessID     = 64
)

// checkCall returns why call is malformed, or "".
func checkCall(call *wire.AccessCall) string {
	switch {
	case len(call.Dst) > maxAccessDst:
		return "destination too long"
	case len(call.Reason) > maxAccessReason:
		return fmt.Sprintf("reason too long (at most %d bytes)", maxAccessReason)
	case len(call.Request) > maxAccessID:
		return "request id too long"
	case call.For < 0:
		return "negative duration"
	}
	switch call.Op {
	case wire.AccessOpRequest:
		if call.Dst == "" {
			return "a request needs a destination"
		}
		if call.For <= 0 {
			return "a request needs a duration"
		}
	case wire.AccessOpList, wire.AccessOpStepUp:
	case wire.AccessOpCancel, wire.AccessOpApprove, wire.AccessOpDeny, wire.AccessOpRevoke:
		if call.Request == "" {
			return call.Op + " needs a request id"
		}
	default:
		return fmt.Sprintf("unknown access operation %q", call.Op)
	}
	return ""
}
