package local

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/login"
	"github.com/warrenmesh/warren/coordinator/login/credential"
	"github.com/warrenmesh/warren/coordinator/store"
)

// AuditAction is the audit action of every sign-in attempt.
const AuditAction = "login.local"

// LockoutAction is the audit action of a (user, source) pair locked out
// after repeated failures: an alert worth a look.
const LockoutAction = "login.local-lockout"

// unknownUser is the actor of attempts on a name that is no user: people
// type passwords into the name field, so the name is never recorded.
const unknownUser = "unknown-user"

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
	reasonAdminNoTOTP    = "admin_without_totp"
	reasonRateLimited    = "rate_limited"
	reasonStoreError     = "store_error"
	msgBadCredentials    = "Wrong user name or password."
	msgUnknownLogin      = "This sign-in link is unknown, expired or already used. Run `warren up` on your device again for a new one."
	msgAttemptsExhausted = "Too many failed attempts: this sign-in link no longer works. Run `warren up` on your device again for a new one."
	msgTryLater          = "The coordinator could not check your sign-in right now; try again shortly."
	msgLoginOver         = "This sign-in has already finished with another method. Run `warren up` on your device again if it is not connected."
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
	// console: the login was a console sign-in (ok only), whose browser
	// goes back to login.ConsoleFinishPath.
	console bool
}

// attempt is one submitted form being checked.
type attempt struct {
	l       *Login
	e       *login.Entry[form]
	ev      audit.Event
	remote  string
	verdict outcome
}

// submit checks one sign-in attempt for the login id. cookie is the value
// of the form's SameSite cookie, remote the client's address.
func (l *Login) submit(ctx context.Context, id, cookie string, c credentials, remote string) result {
	now := l.now()
	l.maybeSweep(now)
	var early *result
	var e *login.Entry[form]
	err := l.table.With(id, func(x *login.Entry[form]) error {
		switch {
		case x.Finished():
			r := finishedResult(x)
			early = &r
		case x.State.busy:
			early = &result{status: http.StatusTooManyRequests, msg: "Another sign-in attempt with this link is being checked; wait a moment and try again."}
		case subtle.ConstantTimeCompare([]byte(cookie), []byte(x.State.cookie)) != 1:
			early = &result{status: http.StatusForbidden, msg: "Your browser did not send this page's cookie. Allow cookies for this site, reload the page and try again."}
		default:
			x.State.busy = true
			e = x
		}
		return nil
	})
	if err != nil {
		return result{status: http.StatusNotFound, msg: msgUnknownLogin, final: true}
	}
	if early != nil {
		return *early
	}
	defer func() { _ = l.table.With(id, func(x *login.Entry[form]) error { x.State.busy = false; return nil }) }()

	name := strings.TrimSpace(c.name)
	code := strings.ReplaceAll(strings.TrimSpace(c.code), " ", "")
	if name == "" || c.password == "" {
		return result{status: http.StatusBadRequest, msg: "Enter your user name and password."}
	}
	if len(name) > maxNameLen {
		return result{status: http.StatusBadRequest, msg: msgBadCredentials}
	}
	a := &attempt{l: l, e: e, remote: remote, ev: audit.Event{Actor: unknownUser, Action: AuditAction,
		Target: "node:" + e.Machine.String(), Remote: remote, Detail: map[string]any{}}}
	u, err := l.st.GetUserByName(ctx, name)
	known := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		l.log.Error("local login: look up user", "err", err)
		return a.failed(ctx, reasonStoreError)
	}
	if known {
		// Names of unknown users are not recorded: people type
		// passwords into the name field.
		a.ev.Actor = "user:" + u.Name
	}

	p := pairOf(strings.ToLower(name), remote)
	if ok, wait := l.limiter.reserve(p, now); !ok {
		return a.deny(ctx, reasonRateLimited, result{status: http.StatusTooManyRequests,
			msg: fmt.Sprintf("Too many failed sign-in attempts for this user from your network. Wait %s and try again.", roundUp(wait))})
	}
	defer func() {
		if lockout := l.limiter.release(p, a.verdict, l.now()); lockout > 0 {
			a.alert(ctx, lockout)
		}
	}()

	reason, err := l.checkPassword(ctx, known, u, c.password)
	if err != nil {
		return result{status: http.StatusServiceUnavailable, msg: msgTryLater}
	}
	if reason != "" {
		a.verdict = failed
		return a.deny(ctx, reason, result{status: http.StatusUnauthorized, msg: msgBadCredentials})
	}
	if u.Disabled {
		// Final: no other password or code changes that.
		if !l.table.Settle(e) {
			return result{status: http.StatusGone, final: true, msg: msgLoginOver}
		}
		l.table.Finish(e, store.User{}, login.ErrAccountDisabled)
		return a.deny(ctx, reasonDisabled, result{status: http.StatusForbidden, final: true,
			msg: "This account is disabled. Ask an admin to enable it."})
	}

	mfa := u.TOTPSecret != ""
	var step int64
	switch {
	case mfa && code == "":
		a.verdict = failed
		return a.deny(ctx, reasonMissingCode, result{status: http.StatusUnauthorized,
			msg: "This account needs the 6-digit code from your authenticator app."})
	case mfa:
		var ok bool
		step, ok = credential.MatchTOTP(u.TOTPSecret, code, now)
		if !ok {
			a.verdict = failed
			return a.deny(ctx, reasonBadCode, result{status: http.StatusUnauthorized,
				msg: "Wrong or expired code. Enter the code your authenticator app shows now (check that this device's clock is right)."})
		}
	case u.Role == store.RoleAdmin:
		return a.deny(ctx, reasonAdminNoTOTP, result{status: http.StatusForbidden,
			msg: fmt.Sprintf("Admins must sign in with a second factor, and %s has none. On the coordinator run `warren-coordinator users totp %s`, add the secret to an authenticator app, then sign in again.", u.Name, u.Name)})
	}

	// The credentials are right: the registry records the sign-in and
	// the TOTP step (a code whose step the user already used is refused
	// there, across restarts too), and may still refuse it. Another
	// method of the same choice may have finished the login first.
	if !l.table.Settle(e) {
		return result{status: http.StatusGone, final: true, msg: msgLoginOver}
	}
	console := l.table.ForConsole(e)
	signed, err := l.users.SignIn(ctx, login.Identity{Method: login.MethodLocal, Machine: e.Machine, Remote: remote,
		UserID: u.ID, TOTPStep: step, MFA: mfa, Console: console})
	switch {
	case errors.Is(err, login.ErrCodeReused):
		a.verdict = failed
		return a.refusedBy(result{status: http.StatusUnauthorized, msg: msgCodeReused})
	case errors.Is(err, login.ErrRefused):
		// Final, like a disabled account: the registry's rules refused
		// this user.
		l.table.Finish(e, store.User{}, err)
		return a.refusedBy(result{status: http.StatusForbidden, final: true, msg: "This account cannot sign in: " + err.Error() + "."})
	case err != nil:
		l.log.Error("local login: record the sign-in", "user", u.Name, "err", err)
		return result{status: http.StatusServiceUnavailable, msg: msgTryLater}
	}
	a.verdict = succeeded
	if !l.table.Finish(e, signed, nil) {
		// Expired, replaced or shut down while we checked.
		return result{status: http.StatusGone, msg: msgUnknownLogin, final: true}
	}
	return result{status: http.StatusOK, final: true, ok: true, console: console,
		msg: fmt.Sprintf("Signed in as %s. You can close this window: your device is joining the mesh.", signed.Name)}
}

const msgCodeReused = "This code was already used. Wait for the next code (at most 30 seconds) and try again."

// roundUp writes d for people, in whole minutes (at least one).
func roundUp(d time.Duration) string {
	m := max(int((d+time.Minute-1)/time.Minute), 1)
	if m == 1 {
		return "a minute"
	}
	return fmt.Sprintf("%d minutes", m)
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
		_, _ = credential.CheckPassword(l.dummyHash(), password)
		if !known {
			return reasonUnknownUser, nil
		}
		return reasonNoPassword, nil
	}
	ok, err := credential.CheckPassword(u.PasswordHash, password)
	switch {
	case err != nil:
		l.log.Error("local login: stored password hash is unusable; set the password again", "user", u.Name, "err", err)
		return reasonMalformedHash, nil
	case !ok:
		return reasonBadPassword, nil
	}
	return "", nil
}

// countFailure counts a refused attempt against the login, ending it after
// MaxAttemptsPerLogin, and returns r as the browser should see it.
func (a *attempt) countFailure(r result) result {
	exhausted := false
	_ = a.l.table.With(a.e.ID, func(x *login.Entry[form]) error {
		x.State.failures++
		exhausted = x.State.failures >= MaxAttemptsPerLogin && !x.Finished()
		return nil
	})
	// Exhausting the attempts ends the login (and a choice's other
	// methods), unless another method finished it first.
	if exhausted && !a.l.table.Settle(a.e) {
		return result{status: http.StatusGone, final: true, msg: msgLoginOver}
	}
	if exhausted && a.l.table.Finish(a.e, store.User{}, ErrTooManyAttempts) {
		a.ev.Detail["loginEnded"] = true
		return result{status: http.StatusGone, msg: r.msg + " " + msgAttemptsExhausted, final: true}
	}
	return r
}

// deny counts a refused attempt against its login and records it.
func (a *attempt) deny(ctx context.Context, reason string, r result) result {
	r = a.countFailure(r)
	a.ev.Outcome = audit.Denied
	a.ev.Detail["reason"] = reason
	a.record(ctx)
	return r
}

// record audits the attempt if it named a user, and counts it otherwise.
func (a *attempt) record(ctx context.Context) {
	if a.ev.Actor == unknownUser {
		reason, _ := a.ev.Detail["reason"].(string)
		a.l.failures.Record(AuditAction, a.remote, reason)
		return
	}
	_ = a.l.audit.Record(ctx, a.ev)
}

// refusedBy counts an attempt the registry refused (and audited).
func (a *attempt) refusedBy(r result) result { return a.countFailure(r) }

// failed records an attempt that could not be checked.
func (a *attempt) failed(ctx context.Context, reason string) result {
	a.ev.Outcome = audit.Failed
	a.ev.Detail["reason"] = reason
	a.record(ctx)
	return result{status: http.StatusServiceUnavailable, msg: msgTryLater}
}

// alert records that a (user, source) pair was locked out: someone is
// guessing, or a person forgot their password.
func (a *attempt) alert(ctx context.Context, lockout time.Duration) {
	a.l.log.Warn("local login: repeated failed sign-ins; this user is locked out from this address for a while",
		"actor", a.ev.Actor, "remote", a.remote, "lockout", lockout)
	if a.ev.Actor == unknownUser {
		a.l.failures.Record(LockoutAction, a.remote, "a name that is no user, locked out for "+lockout.String())
		return
	}
	_ = a.l.audit.Record(ctx, audit.Event{Actor: a.ev.Actor, Action: LockoutAction, Target: a.ev.Actor, Remote: a.remote,
		Outcome: audit.Denied, Detail: map[string]any{"lockout_seconds": int(lockout / time.Second), "source": login.SourceKey(a.remote)}})
}

// finishedResult describes a login that is over but not yet collected.
func finishedResult(e *login.Entry[form]) result {
	u, err := e.Outcome()
	switch {
	case err == nil:
		return result{status: http.StatusOK, final: true, ok: true,
			msg: fmt.Sprintf("Signed in as %s. You can close this window.", u.Name)}
	case errors.Is(err, ErrTooManyAttempts):
		return result{status: http.StatusGone, final: true, msg: msgAttemptsExhausted}
	case errors.Is(err, login.ErrLoginOver):
		return result{status: http.StatusGone, final: true, msg: msgLoginOver}
	case errors.Is(err, login.ErrAccountDisabled):
		return result{status: http.StatusForbidden, final: true, msg: "This account is disabled. Ask an admin to enable it."}
	default:
		return result{status: http.StatusGone, final: true, msg: msgUnknownLogin}
	}
}
