package locallogin

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/store"
)

// AuditAction is the audit action of every sign-in attempt.
const AuditAction = "login.local"

// maxNameLen bounds a submitted user name.
const maxNameLen = 256

// Audit reasons of denied attempts (Detail["reason"]).
const (
	reasonUnknownUser    = "unknown_user"
	reasonNoPassword     = "no_local_password"
	reasonBadPassword    = "bad_password"
	reasonMalformedHash  = "malformed_hash"
	reasonDisabled       = "disabled"
	reasonMissingCode    = "missing_code"
	reasonBadCode        = "bad_code"
	reasonCodeReused     = "code_reused"
	reasonAdminNoTOTP    = "admin_without_totp"
	reasonRateLimited    = "rate_limited"
	reasonStoreError     = "store_error"
	msgBadCredentials    = "Wrong user name or password."
	msgUnknownLogin      = "This sign-in link is unknown, expired or already used. Run `warren up` on your device again for a new one."
	msgAttemptsExhausted = "Too many failed attempts: this sign-in link no longer works. Run `warren up` on your device again for a new one."
	msgTryLater          = "The coordinator could not check your sign-in right now; try again shortly."
)

// credentials are what the form submitted. Never logged.
type credentials struct {
	name, password, code string
}

// result is the answer to one submitted form.
type result struct {
	status int
	msg    string
	final  bool // the login is over (either way): show no form
	ok     bool
}

// submit checks one sign-in attempt for the login id. cookie is the value
// of the form's SameSite cookie, remote the client's address.
func (l *Login) submit(ctx context.Context, id, cookie string, c credentials, remote string) result {
	now := l.now()
	l.mu.Lock()
	p := l.lookupLocked(id, now)
	switch {
	case p == nil:
		l.mu.Unlock()
		return result{status: http.StatusNotFound, msg: msgUnknownLogin, final: true}
	case p.finished:
		r := finishedResult(p)
		l.mu.Unlock()
		return r
	case p.busy:
		l.mu.Unlock()
		return result{status: http.StatusTooManyRequests, msg: "Another sign-in attempt with this link is being checked; wait a moment and try again."}
	case subtle.ConstantTimeCompare([]byte(cookie), []byte(p.cookie)) != 1:
		l.mu.Unlock()
		return result{status: http.StatusForbidden, msg: "Your browser did not send this page's cookie. Allow cookies for this site, reload the page and try again."}
	}
	p.busy = true
	machine := p.machine
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		p.busy = false
		l.mu.Unlock()
	}()

	name := strings.TrimSpace(c.name)
	code := strings.ReplaceAll(strings.TrimSpace(c.code), " ", "")
	if name == "" || c.password == "" {
		return result{status: http.StatusBadRequest, msg: "Enter your user name and password."}
	}
	if len(name) > maxNameLen {
		return result{status: http.StatusBadRequest, msg: msgBadCredentials}
	}

	ev := audit.Event{Actor: "unknown-user", Action: AuditAction, Target: machine.String(), Remote: remote,
		Detail: map[string]any{}}
	u, err := l.st.GetUserByName(ctx, name)
	known := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		l.log.Error("local login: look up user", "err", err)
		return l.failed(ctx, ev, reasonStoreError)
	}
	if known {
		// Names of unknown users are not recorded: people type
		// passwords into the name field.
		ev.Actor = "user:" + u.Name
	}

	limKey := strings.ToLower(name)
	if !l.names.reserve(limKey, now) {
		return l.deny(ctx, p, ev, reasonRateLimited, result{status: http.StatusTooManyRequests,
			msg: fmt.Sprintf("Too many failed sign-in attempts for this user. Wait %d minutes and try again.", int(UserFailureWindow/time.Minute))})
	}
	verdict := neutral
	defer func() { l.names.release(limKey, verdict, l.now()) }()

	reason, err := l.checkPassword(ctx, known, u, c.password)
	if err != nil {
		return result{status: http.StatusServiceUnavailable, msg: msgTryLater}
	}
	if reason != "" {
		verdict = failed
		return l.deny(ctx, p, ev, reason, result{status: http.StatusUnauthorized, msg: msgBadCredentials})
	}
	if u.Disabled {
		return l.deny(ctx, p, ev, reasonDisabled, result{status: http.StatusForbidden,
			msg: "This account is disabled. Ask an admin to enable it."})
	}

	mfa := u.TOTPSecret != ""
	switch {
	case mfa && code == "":
		verdict = failed
		return l.deny(ctx, p, ev, reasonMissingCode, result{status: http.StatusUnauthorized,
			msg: "This account needs the 6-digit code from your authenticator app."})
	case mfa:
		step, ok := matchTOTP(u.TOTPSecret, code, now)
		if !ok {
			verdict = failed
			return l.deny(ctx, p, ev, reasonBadCode, result{status: http.StatusUnauthorized,
				msg: "Wrong or expired code. Enter the code your authenticator app shows now (check that this device's clock is right)."})
		}
		if !l.useStep(u.ID, step) {
			verdict = failed
			return l.deny(ctx, p, ev, reasonCodeReused, result{status: http.StatusUnauthorized,
				msg: "This code was already used. Wait for the next code (at most 30 seconds) and try again."})
		}
	case u.Role == store.RoleAdmin:
		return l.deny(ctx, p, ev, reasonAdminNoTOTP, result{status: http.StatusForbidden,
			msg: fmt.Sprintf("Admins must sign in with a second factor, and %s has none. On the coordinator run `warren-coordinator users totp %s`, add the secret to an authenticator app, then sign in again.", u.Name, u.Name)})
	}

	if mfa {
		updated, err := l.recordMFA(ctx, u.ID, now)
		if errors.Is(err, errDisabled) {
			return l.deny(ctx, p, ev, reasonDisabled, result{status: http.StatusForbidden,
				msg: "This account is disabled. Ask an admin to enable it."})
		}
		if err != nil {
			l.log.Error("local login: record MFA time", "user", u.Name, "err", err)
			return l.failed(ctx, ev, reasonStoreError)
		}
		u = updated
	}
	verdict = succeeded
	l.mu.Lock()
	live := !p.finished
	l.finishLocked(p, u, nil)
	l.mu.Unlock()
	if !live {
		// Expired, replaced or shut down while we checked.
		return result{status: http.StatusGone, msg: msgUnknownLogin, final: true}
	}
	ev.Outcome = audit.OK
	ev.Detail["mfa"] = mfa
	_ = l.audit.Record(ctx, ev)
	if mfa && l.onUserChanged != nil {
		l.onUserChanged(context.WithoutCancel(ctx), u.ID)
	}
	return result{status: http.StatusOK, final: true, ok: true,
		msg: fmt.Sprintf("Signed in as %s. You can close this window: your device is joining the mesh.", u.Name)}
}

// checkPassword verifies password for u, returning a denial reason ("" if
// it matches) or an error if ctx ended while waiting for a hashing slot.
// Unknown users and users without a password cost as much as a wrong
// password, so timing does not tell them apart.
func (l *Login) checkPassword(ctx context.Context, known bool, u store.User, password string) (string, error) {
	select {
	case l.hashes <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-l.hashes }()
	if !known || u.PasswordHash == "" {
		_, _ = CheckPassword(l.dummyHash(), password)
		if !known {
			return reasonUnknownUser, nil
		}
		return reasonNoPassword, nil
	}
	ok, err := CheckPassword(u.PasswordHash, password)
	switch {
	case err != nil:
		l.log.Error("local login: stored password hash is unusable; set the password again", "user", u.Name, "err", err)
		return reasonMalformedHash, nil
	case !ok:
		return reasonBadPassword, nil
	}
	return "", nil
}

var errDisabled = errors.New("user disabled")

// recordMFA sets the user's MFAAt to now and returns the stored user.
func (l *Login) recordMFA(ctx context.Context, id store.UserID, now time.Time) (store.User, error) {
	var out store.User
	err := l.st.Tx(ctx, func(q store.Queries) error {
		u, err := q.GetUser(ctx, id)
		if err != nil {
			return err
		}
		if u.Disabled {
			return errDisabled
		}
		u.MFAAt = now
		if err := q.UpdateUser(ctx, u); err != nil {
			return err
		}
		out = u
		return nil
	})
	return out, err
}

// deny records a refused attempt against the login (ending it after
// MaxAttemptsPerLogin) and audits it.
func (l *Login) deny(ctx context.Context, p *pending, ev audit.Event, reason string, r result) result {
	l.mu.Lock()
	p.failures++
	over := p.failures >= MaxAttemptsPerLogin && !p.finished
	if over {
		l.finishLocked(p, store.User{}, ErrTooManyAttempts)
	}
	l.mu.Unlock()
	ev.Outcome = audit.Denied
	ev.Detail["reason"] = reason
	if over {
		ev.Detail["loginEnded"] = true
		r = result{status: http.StatusGone, msg: r.msg + " " + msgAttemptsExhausted, final: true}
	}
	_ = l.audit.Record(ctx, ev)
	return r
}

// failed audits an attempt that could not be checked.
func (l *Login) failed(ctx context.Context, ev audit.Event, reason string) result {
	ev.Outcome = audit.Failed
	ev.Detail["reason"] = reason
	_ = l.audit.Record(ctx, ev)
	return result{status: http.StatusServiceUnavailable, msg: msgTryLater}
}

// finishedResult describes a login that is over but not yet collected.
func finishedResult(p *pending) result {
	switch {
	case p.err == nil:
		return result{status: http.StatusOK, final: true, ok: true,
			msg: fmt.Sprintf("Signed in as %s. You can close this window.", p.user.Name)}
	case errors.Is(p.err, ErrTooManyAttempts):
		return result{status: http.StatusGone, final: true, msg: msgAttemptsExhausted}
	default:
		return result{status: http.StatusGone, final: true, msg: msgUnknownLogin}
	}
}
