package console

import (
	"container/list"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"

	"github.com/warrenmesh/warren/coordinator/store"
)

// This file keeps console sessions in memory: a random 256-bit ID in a
// cookie (Secure, HttpOnly, SameSite=Strict), a CSRF token per session,
// an idle and an absolute timeout, and a bound on how many are held (the
// least recently used goes first). A coordinator restart signs everyone
// out; that is the price of never storing a session secret.

// Cookie names: with Secure cookies the __Host- prefix pins the cookie to
// this origin and path /.
const (
	cookieSecure   = "__Host-warren-console"
	cookieInsecure = "warren-console"
)

// session is one signed-in browser.
type session struct {
	id      string
	csrf    string
	user    store.UserID
	created time.Time
	used    time.Time
	elem    *list.Element
}

// sessions holds the sessions; safe for concurrent use.
type sessions struct {
	now         func() time.Time
	idle, max   time.Duration
	maxSessions int

	mu   sync.Mutex
	byID map[string]*session
	lru  *list.List // front: most recently used
}

func newSessions(now func() time.Time, idle, max time.Duration, maxSessions int) *sessions {
	return &sessions{now: now, idle: idle, max: max, maxSessions: maxSessions, byID: map[string]*session{}, lru: list.New()}
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// create starts a session for user.
func (ss *sessions) create(user store.UserID) *session {
	now := ss.now()
	s := &session{id: randomToken(), csrf: randomToken(), user: user, created: now, used: now}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for len(ss.byID) >= ss.maxSessions {
		ss.removeLocked(ss.lru.Back().Value.(*session))
	}
	s.elem = ss.lru.PushFront(s)
	ss.byID[s.id] = s
	return s
}

// get returns the live session with ID id and marks it used, or nil.
func (ss *sessions) get(id string) *session {
	now := ss.now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.byID[id]
	if s == nil {
		return nil
	}
	if now.Sub(s.used) > ss.idle || now.Sub(s.created) > ss.max {
		ss.removeLocked(s)
		return nil
	}
	s.used = now
	ss.lru.MoveToFront(s.elem)
	return s
}

// end removes the session with ID id.
func (ss *sessions) end(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if s := ss.byID[id]; s != nil {
		ss.removeLocked(s)
	}
}

// endUser removes every session of user.
func (ss *sessions) endUser(user store.UserID) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, s := range ss.byID {
		if s.user == user {
			ss.removeLocked(s)
		}
	}
}

func (ss *sessions) removeLocked(s *session) {
	delete(ss.byID, s.id)
	ss.lru.Remove(s.elem)
}

// checkCSRF reports whether token is s's CSRF token.
func (s *session) checkCSRF(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.csrf)) == 1
}

// cookieName is the session cookie's name under cfg.
func (srv *Server) cookieName() string {
	if srv.cfg.InsecureCookies {
		return cookieInsecure
	}
	return cookieSecure
}

// setSessionCookie sends s's cookie (a session cookie: the browser drops
// it when it closes; the server's timeouts bound it anyway).
func (srv *Server) setSessionCookie(w http.ResponseWriter, s *session) {
	http.SetCookie(w, &http.Cookie{Name: srv.cookieName(), Value: s.id, Path: "/", HttpOnly: true,
		Secure: !srv.cfg.InsecureCookies, SameSite: http.SameSiteStrictMode})
}

// clearSessionCookie tells the browser to forget the session cookie.
func (srv *Server) clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: srv.cookieName(), Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: !srv.cfg.InsecureCookies, SameSite: http.SameSiteStrictMode})
}
