package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/login"
	"github.com/warrenmesh/warren/coordinator/store"
)

// Step-up sign-in: a registered node's user signs in again, through the
// same URL flow as an interactive join, to refresh their MFA time (a
// just-in-time access rule or an ACL with "mfa" wants it fresher). The
// sign-in method records the sign-in as always (login.Users.SignIn sets
// the user's MFA time when a second factor was used); the step-up itself
// only checks that whoever signed in is the node's owner. It never
// re-keys, re-registers or moves the node.

// ErrStepUpWrongUser refuses a step-up sign-in by someone other than the
// node's owner.
var ErrStepUpWrongUser = fmt.Errorf("%w: signed in as someone other than this device's owner", ErrLoginFailed)

// ErrStepUpNoMFA is returned when the step-up sign-in used no second
// factor, so the user's MFA time did not change.
var ErrStepUpNoMFA = errors.New("the sign-in did not use a second factor (MFA): sign in again and complete MFA")

// StepUp is a step-up sign-in in progress (BeginStepUp).
type StepUp struct {
	// URL is where the node's user must sign in.
	URL string
	// mfaBefore is the owner's MFA time when the sign-in began: the
	// sign-in must set a later one (or one stamped now).
	mfaBefore time.Time
}

// BeginStepUp starts a step-up sign-in for node id's owner, whose control
// channel comes from remote; the user must open its URL.
func (r *Registry) BeginStepUp(ctx context.Context, id store.NodeID, remote string) (StepUp, error) {
	if r.login == nil {
		return StepUp{}, login.ErrNoLogin
	}
	n, err := r.st.GetNode(ctx, id)
	if err != nil {
		return StepUp{}, err
	}
	if n.Tagged() || n.UserID == 0 {
		return StepUp{}, fmt.Errorf("%w: %s is a tagged node; MFA belongs to a user's device", ErrForbidden, n.Name)
	}
	owner, err := r.st.GetUser(ctx, n.UserID)
	if err != nil {
		return StepUp{}, err
	}
	url, err := r.login.Begin(ctx, n.MachineKey, remote)
	if err != nil {
		return StepUp{}, fmt.Errorf("start sign-in: %w", err)
	}
	return StepUp{URL: url, mfaBefore: owner.MFAAt}, nil
}

// WaitStepUp waits for step-up sign-in su of node id to end and
// returns the node's owner as stored after it. A sign-in by anyone else
// is refused with ErrStepUpWrongUser; one without a second factor with
// ErrStepUpNoMFA. Both, and success, are audited (login.step-up).
func (r *Registry) WaitStepUp(ctx context.Context, id store.NodeID, su StepUp, remote string) (store.User, error) {
	n, err := r.st.GetNode(ctx, id)
	if err != nil {
		return store.User{}, err
	}
	ev := audit.Event{Actor: fmt.Sprintf("node:%d", id), Action: "login.step-up", Target: fmt.Sprintf("node:%d", id),
		Remote: remote, Detail: map[string]any{"node": n.Name}}
	u, err := r.login.Wait(ctx, n.MachineKey, su.URL)
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrLoginFailed, err)
		r.refused(ctx, ev, err)
		return store.User{}, err
	}
	ev.Actor = "user:" + u.Name
	if u.ID != n.UserID {
		ev.Detail["owner"] = fmt.Sprintf("user:%d", n.UserID)
		r.refused(ctx, ev, ErrStepUpWrongUser)
		return store.User{}, ErrStepUpWrongUser
	}
	// Fresh: later than before, or stamped now (a clock that has not
	// moved since the last sign-in).
	if !u.MFAAt.After(su.mfaBefore) && (u.MFAAt.IsZero() || u.MFAAt.Before(r.now())) {
		r.refused(ctx, ev, ErrStepUpNoMFA)
		return store.User{}, ErrStepUpNoMFA
	}
	ev.Detail["mfaAt"] = u.MFAAt
	if err := r.audit.Record(ctx, ev); err != nil {
		return store.User{}, err
	}
	return u, nil
}
