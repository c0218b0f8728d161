package oidclogin

import (
	"context"
	"crypto/rand"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
)

// pending is one login between Begin and its expiry. The fields after
// expires are guarded by Login.mu, except user and err, which are written
// once before done is closed and only read after.
type pending struct {
	id      string // the secret part of the start URL
	machine key.MachinePublic
	expires time.Time
	done    chan struct{} // closed when the login has an outcome

	// Per browser visit of the start URL; replaced by each visit.
	state    string // "" while no visit is outstanding
	nonce    string
	verifier string // PKCE code verifier

	// The cookie that binds the browser to the login.
	cookieName string
	binding    string

	finished bool
	user     store.User
	err      error
}

// result returns the outcome of a finished login.
func (p *pending) result() (store.User, error) {
	<-p.done
	return p.user, p.err
}

// randomToken returns an unguessable URL- and cookie-safe string (128
// bits).
func randomToken() string { return rand.Text() }

// add registers a new login for machine, sweeping expired ones first and
// replacing an unfinished login of the same machine.
func (l *Login) add(machine key.MachinePublic) (*pending, error) {
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	if old := l.byMachine[machine]; old != nil {
		l.finishLocked(old, store.User{}, ErrSuperseded)
		l.forgetLocked(old)
	}
	if len(l.byID) >= l.maxPending {
		return nil, ErrTooManyLogins
	}
	p := &pending{
		id:         randomToken(),
		machine:    machine,
		expires:    now.Add(l.cfg.LoginTimeout),
		done:       make(chan struct{}),
		cookieName: "warren_login_" + randomToken()[:12],
		binding:    randomToken(),
	}
	l.byID[p.id] = p
	l.byMachine[machine] = p
	return p, nil
}

// lookup returns the login behind loginURL if it belongs to machine and
// has not expired, or nil.
func (l *Login) lookup(machine key.MachinePublic, loginURL string) *pending {
	id, ok := strings.CutPrefix(loginURL, l.startBase)
	if !ok || id == "" {
		return nil
	}
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	p := l.byID[id]
	if p == nil || p.machine != machine {
		return nil
	}
	return p
}

// visit prepares the login with the given ID for a trip to the provider:
// a fresh state, nonce and PKCE verifier replace any earlier visit's, so a
// state value is only ever good for the newest visit, and once. It returns
// a copy of the login's fields the caller needs, or ok false with a reason
// for the browser.
func (l *Login) visit(id string) (v visitInfo, reason string, ok bool) {
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	p := l.byID[id]
	switch {
	case p == nil:
		return v, "This login link is unknown or has expired. Run 'warren up' on the device again to get a new link.", false
	case p.finished:
		return v, "This login has already finished. Run 'warren up' on the device again if it is not connected.", false
	}
	if p.state != "" {
		delete(l.byState, p.state)
	}
	p.state, p.nonce, p.verifier = randomToken(), randomToken(), oauth2.GenerateVerifier()
	l.byState[p.state] = p
	return visitInfo{p: p, state: p.state, nonce: p.nonce, verifier: p.verifier,
		cookieName: p.cookieName, binding: p.binding, expires: p.expires}, "", true
}

// visitInfo is a snapshot of a pending login for one HTTP request.
type visitInfo struct {
	p                      *pending
	state, nonce, verifier string
	cookieName, binding    string
	expires                time.Time
}

// claim takes the login a callback's state belongs to. The state is
// consumed whatever happens next, so it can never be used twice. ok is
// false if the state is unknown, already used, or its login expired or
// finished.
func (l *Login) claim(state string) (v visitInfo, ok bool) {
	if state == "" {
		return v, false
	}
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	p := l.byState[state]
	if p == nil {
		return v, false
	}
	delete(l.byState, state)
	p.state = ""
	if p.finished {
		return v, false
	}
	return visitInfo{p: p, state: state, nonce: p.nonce, verifier: p.verifier,
		cookieName: p.cookieName, binding: p.binding, expires: p.expires}, true
}

// finish records the outcome of p and wakes its waiters. It reports false
// if p already had an outcome (which is then kept).
func (l *Login) finish(p *pending, u store.User, err error) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.finishLocked(p, u, err)
}

func (l *Login) finishLocked(p *pending, u store.User, err error) bool {
	if p.finished {
		return false
	}
	p.finished = true
	p.user, p.err = u, err
	if p.state != "" {
		delete(l.byState, p.state)
		p.state = ""
	}
	close(p.done)
	return true
}

// forgetLocked removes p from every index.
func (l *Login) forgetLocked(p *pending) {
	if l.byID[p.id] == p {
		delete(l.byID, p.id)
	}
	if l.byMachine[p.machine] == p {
		delete(l.byMachine, p.machine)
	}
	if p.state != "" && l.byState[p.state] == p {
		delete(l.byState, p.state)
	}
}

// sweepLocked ends and forgets every login past its expiry. A finished
// login stays until then so that a repeated Wait still sees its outcome.
func (l *Login) sweepLocked(now time.Time) {
	for _, p := range l.byID {
		if now.Before(p.expires) {
			continue
		}
		l.expireLocked(p)
		l.forgetLocked(p)
	}
}

// expireLocked ends p with ErrLoginTimeout, if it has no outcome yet, and
// queues it for an audit event (see reportExpired).
func (l *Login) expireLocked(p *pending) {
	if l.finishLocked(p, store.User{}, ErrLoginTimeout) {
		l.expired = append(l.expired, p.machine)
	}
}

// reportExpired writes an audit event for each login that timed out since
// the last call. It runs outside l.mu, because auditing writes to the store.
func (l *Login) reportExpired(ctx context.Context) {
	l.mu.Lock()
	machines := l.expired
	l.expired = nil
	l.mu.Unlock()
	for _, m := range machines {
		l.record(ctx, audit.Event{Actor: "node:" + m.String(), Target: "node:" + m.String(), Outcome: audit.Failed,
			Detail: map[string]any{"reason": "login not completed in time"}})
	}
}
