package console

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/login"
	"github.com/warrenmesh/warren/internal/key"
)

// This file signs people in to the console with the coordinator's own
// methods (OIDC, local password + TOTP, or the choice of both) and out
// again. The console checks no credential itself: a sign-in is a login of
// the configured login.Login, begun for a fresh random machine key that
// names this browser's sign-in (with login.NewConsoleShared, so the
// method's last page sends the browser back to login.ConsoleFinishPath),
// and the session starts when the method's Wait returns the user. The
// registry audits the sign-in as it does a device's, marked as a console
// sign-in.

// Pending sign-in cookie names (SameSite=Lax: it must come back on the
// identity provider's top-level redirect).
const (
	pendingSecure   = "__Host-warren-console-login"
	pendingInsecure = "warren-console-login"
)

// Bounds of the pending sign-ins: how many are held, and how long one
// lasts (the methods' own logins end sooner by default).
const (
	maxPending     = 1000
	pendingTimeout = 15 * time.Minute
	// finishWait bounds the finish handler's Wait: the method has
	// finished the login before it sends the browser back, so the wait
	// is for an outcome that is already there.
	finishWait = 5 * time.Second
)

// pendingLogin is one browser's sign-in in progress.
type pendingLogin struct {
	machine key.MachinePublic
	url     string // the method's URL; a secret, never logged
	next    string // console path to land on
	expires time.Time
}

// pendingLogins holds the sign-ins in progress, by the random value of
// the browser's pending cookie; safe for concurrent use.
type pendingLogins struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]pendingLogin
}

func newPendingLogins(now func() time.Time) *pendingLogins {
	return &pendingLogins{now: now, m: map[string]pendingLogin{}}
}

// put stores p under a new random ID, forgetting expired entries, and
// reports false when the table is full.
func (pl *pendingLogins) put(p pendingLogin) (string, bool) {
	now := pl.now()
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for id, e := range pl.m {
		if !now.Before(e.expires) {
			delete(pl.m, id)
		}
	}
	if len(pl.m) >= maxPending {
		return "", false
	}
	id := randomToken()
	p.expires = now.Add(pendingTimeout)
	pl.m[id] = p
	return id, true
}

// take removes and returns the live entry with id.
func (pl *pendingLogins) take(id string) (pendingLogin, bool) {
	now := pl.now()
	pl.mu.Lock()
	defer pl.mu.Unlock()
	p, ok := pl.m[id]
	delete(pl.m, id)
	return p, ok && now.Before(p.expires)
}

// peek returns the live entry with id without removing it.
func (pl *pendingLogins) peek(id string) (pendingLogin, bool) {
	now := pl.now()
	pl.mu.Lock()
	defer pl.mu.Unlock()
	p, ok := pl.m[id]
	return p, ok && now.Before(p.expires)
}

// safeNext returns the console path a sign-in should land on: raw's
// path if raw is a plain path inside the console, before and after
// decoding, else the console's home. It never returns anything a browser
// could read as another origin or a path outside the console.
func safeNext(raw string) string {
	if len(raw) > 512 || !safePath(raw) {
		return Prefix
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || !safePath(u.Path) {
		return Prefix
	}
	return u.Path
}

// safePath reports whether p lies inside the console with nothing a
// browser could resolve elsewhere: no "//", no backslash or control
// character, no ".." segment.
func safePath(p string) bool {
	if !strings.HasPrefix(p, Prefix) || strings.Contains(p, "//") || strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

// loginData is what the sign-in page shows.
type loginData struct {
	Available bool   // a sign-in method is configured
	Next      string // where to land after signing in
	Error     string
}

func (s *Server) signInRoutes() {
	s.get(Prefix+"login", s.serveLogin)
	s.addRoute("POST "+Prefix+"login", false, true)
	s.mux.HandleFunc("POST "+Prefix+"login", s.serveBegin)
	s.get(Prefix+"login/finish", s.serveFinish)
	s.handle("POST "+Prefix+"logout", roleMember, s.serveLogout)
}

// pendingCookieName is the pending sign-in cookie's name under cfg.
func (s *Server) pendingCookieName() string {
	if s.cfg.InsecureCookies {
		return pendingInsecure
	}
	return pendingSecure
}

func (s *Server) setPendingCookie(w http.ResponseWriter, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: s.pendingCookieName(), Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: !s.cfg.InsecureCookies, SameSite: http.SameSiteLaxMode})
}

// serveLogin shows the sign-in page (or sends a signed-in browser home).
func (s *Server) serveLogin(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if c, err := r.Cookie(s.cookieName()); err == nil && s.sessions.get(c.Value) != nil {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	s.render(w, nil, "login", "Sign in", loginData{Available: s.cfg.Login != nil, Next: next})
}

// serveBegin begins a sign-in with the coordinator's login and sends the
// browser to it. It has no session to take a CSRF token from: it takes
// requests from this origin only (a cross-site page cannot start a
// sign-in in someone's browser and finish it as its own user).
func (s *Server) serveBegin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	next := safeNext(r.PostFormValue("next"))
	if !sameOrigin(r) {
		s.refuseAnonymous(w, r, "sign-in started from another site")
		return
	}
	j, ok := s.cfg.Login.(login.Joiner)
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		s.render(w, nil, "login", "Sign in", loginData{Next: next})
		return
	}
	// A browser that begins again reuses its machine key, so the method
	// replaces its older login instead of holding both.
	machine := key.NewMachine().Public()
	if c, err := r.Cookie(s.pendingCookieName()); err == nil {
		if old, ok := s.pending.take(c.Value); ok {
			machine = old.machine
		}
	}
	u, err := j.BeginShared(r.Context(), machine, r.RemoteAddr, login.NewConsoleShared())
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		s.render(w, nil, "login", "Sign in", loginData{Available: true, Next: next, Error: beginError(err)})
		return
	}
	id, ok := s.pending.put(pendingLogin{machine: machine, url: u, next: next})
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		s.render(w, nil, "login", "Sign in", loginData{Available: true, Next: next, Error: login.ErrTooManyLogins.Error()})
		return
	}
	s.setPendingCookie(w, id, int(pendingTimeout/time.Second))
	http.Redirect(w, r, u, http.StatusSeeOther)
}

// beginError says why a sign-in could not start, in words for people.
func beginError(err error) string {
	switch {
	case errors.Is(err, login.ErrTooManyLogins), errors.Is(err, login.ErrProviderUnavailable), errors.Is(err, login.ErrClosed):
		return err.Error()
	}
	return "The sign-in could not start; try again in a minute."
}

// serveFinish collects the outcome of this browser's sign-in (the method
// sent it here) and starts a session: a new session ID at every sign-in,
// and the browser's earlier session, if any, ends.
func (s *Server) serveFinish(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(s.pendingCookieName())
	var p pendingLogin
	ok := false
	if err == nil {
		p, ok = s.pending.peek(c.Value)
	}
	if !ok {
		w.WriteHeader(http.StatusBadRequest)
		s.render(w, nil, "login", "Sign in", loginData{Available: s.cfg.Login != nil, Next: Prefix,
			Error: "This sign-in is unknown or has expired; sign in again."})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), finishWait)
	defer cancel()
	u, err := s.cfg.Login.Wait(ctx, p.machine, p.url)
	if err != nil && ctx.Err() != nil {
		// Not finished yet (the browser came here on its own): the
		// login stays open for the method's page.
		w.WriteHeader(http.StatusAccepted)
		s.render(w, nil, "login", "Sign in", loginData{Available: true, Next: p.next,
			Error: "The sign-in has not finished yet: complete it on the sign-in page, or start again."})
		return
	}
	s.pending.take(c.Value)
	s.setPendingCookie(w, "", -1)
	if err != nil {
		w.WriteHeader(http.StatusForbidden)
		s.render(w, nil, "login", "Sign in", loginData{Available: true, Next: p.next, Error: finishError(err)})
		return
	}
	if old, err := r.Cookie(s.cookieName()); err == nil {
		s.sessions.end(old.Value)
	}
	sess := s.sessions.create(u.ID)
	s.setSessionCookie(w, sess)
	// A page, not a redirect: after a provider's cross-site redirect the
	// browser would not send the SameSite=Strict cookie on a redirect in
	// the same chain; a navigation from this page is same-site.
	s.render(w, nil, "signed-in", "Signed in", p.next)
}

// finishError says why a sign-in ended without a session.
func finishError(err error) string {
	var msg string
	switch {
	case errors.Is(err, login.ErrRefused):
		msg = err.Error()
	case errors.Is(err, login.ErrLoginExpired), errors.Is(err, login.ErrUnknownLogin),
		errors.Is(err, login.ErrSuperseded), errors.Is(err, login.ErrLoginOver):
		msg = "the sign-in expired or was replaced by a newer one"
	default:
		msg = "the sign-in did not complete"
	}
	return "Not signed in: " + msg + ". Sign in again."
}

// serveLogout ends the session (the handler checked its CSRF token).
func (s *Server) serveLogout(w http.ResponseWriter, r *http.Request, p *page) {
	s.sessions.end(p.Session.id)
	s.clearSessionCookie(w)
	ev := audit.Event{Actor: p.Actor.Name, Action: "console.sign-out", Target: "console", Remote: r.RemoteAddr, Outcome: audit.OK}
	if err := s.cfg.Audit.Record(context.WithoutCancel(r.Context()), ev); err != nil {
		s.log.Error("console: audit sign-out", "err", err)
	}
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}

// refuseAnonymous refuses a request without a session, saying nothing
// about what it asked for, and counts it (never stores it: anyone can
// send them).
func (s *Server) refuseAnonymous(w http.ResponseWriter, r *http.Request, why string) {
	if s.cfg.Failures != nil {
		s.cfg.Failures.Record("console.refused", r.RemoteAddr, why)
	}
	http.Error(w, "forbidden", http.StatusForbidden)
}
