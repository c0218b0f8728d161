package oidc

import (
	"crypto/rand"
	"crypto/subtle"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/warrenmesh/warren/coordinator/login"
	"github.com/warrenmesh/warren/coordinator/store"
)

// visitState is what a login keeps between Begin and its outcome, in the
// shared login table. Guarded by the table.
type visitState struct {
	// Per browser visit of the start URL; replaced by each visit.
	state    string // "" while no visit is outstanding
	nonce    string
	verifier string // PKCE code verifier

	// The cookie that binds the browser to the login.
	cookieName string
	binding    string
}

// newVisitState returns the state of a new login.
func newVisitState() visitState {
	return visitState{cookieName: "warren_login_" + rand.Text()[:12], binding: rand.Text()}
}

// visit prepares the login with the given ID for a trip to the provider:
// a fresh state, nonce and PKCE verifier replace any earlier visit's, so a
// state value is only ever good for the newest visit, and once. The state
// sent to the provider is the login's ID and a fresh secret. It returns a
// copy of the login's fields the caller needs, or ok false with a reason
// for the browser.
func (l *Login) visit(id string) (v visitInfo, reason string, ok bool) {
	err := l.table.With(id, func(e *login.Entry[visitState]) error {
		if e.Finished() || e.SharedSettled() {
			reason = msgFinished
			return nil
		}
		s := &e.State
		s.state, s.nonce, s.verifier = rand.Text(), rand.Text(), oauth2.GenerateVerifier()
		v = visitInfo{e: e, state: e.ID + "." + s.state, nonce: s.nonce, verifier: s.verifier,
			cookieName: s.cookieName, binding: s.binding, expires: e.Expires}
		ok = true
		return nil
	})
	if err != nil {
		reason = "This login link is unknown or has expired. Run 'warren up' on the device again to get a new link."
	}
	return v, reason, ok
}

// visitInfo is a snapshot of a pending login for one HTTP request.
type visitInfo struct {
	e                      *login.Entry[visitState]
	state, nonce, verifier string
	cookieName, binding    string
	expires                time.Time
}

// claim takes the login a callback's state belongs to. The state is
// consumed whatever happens next, so it can never be used twice. ok is
// false if the state is unknown, already used, or its login expired or
// finished; finished is set in the last case.
func (l *Login) claim(state string) (v visitInfo, ok, finished bool) {
	id, secret, found := strings.Cut(state, ".")
	if !found || id == "" || secret == "" {
		return v, false, false
	}
	_ = l.table.With(id, func(e *login.Entry[visitState]) error {
		s := &e.State
		if s.state == "" || subtle.ConstantTimeCompare([]byte(secret), []byte(s.state)) != 1 {
			return nil
		}
		s.state = ""
		if e.Finished() || e.SharedSettled() {
			finished = true
			return nil
		}
		v = visitInfo{e: e, state: state, nonce: s.nonce, verifier: s.verifier,
			cookieName: s.cookieName, binding: s.binding, expires: e.Expires}
		ok = true
		return nil
	})
	return v, ok, finished
}

// msgFinished tells a browser that the login it came for is over.
const msgFinished = "This sign-in has already finished. Run 'warren up' on the device again if it is not connected."

// finish records the outcome of a login and wakes its waiter. It reports
// false if the login already had an outcome (which is then kept).
func (l *Login) finish(e *login.Entry[visitState], u store.User, err error) bool {
	return l.table.Finish(e, u, err)
}
