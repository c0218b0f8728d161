package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
)

// This file is what every page shares: the check that a request has a
// live session of an enabled user with the role the page needs, the CSRF
// check on every state-changing request, and rendering.

// role is what a page requires.
type role int

const (
	roleMember role = iota // any signed-in, enabled user
	roleAdmin              // users with the admin role
)

// page is one authenticated request as a handler sees it.
type page struct {
	Session *session
	User    store.User     // as stored now
	Actor   registry.Actor // for registry, access and policyfile calls
	// CSRF is the token every form must post back (field "csrf").
	CSRF  string
	Admin bool
	// Path is the request's path, for the navigation.
	Path string
}

// handle registers h at pattern ("GET /admin/nodes") for users with role
// need. Without a live session a GET is sent to the sign-in page and
// anything else is refused; a member asking for an admin page gets 403
// (audited); a request that changes state (anything but GET and HEAD)
// must come from this origin and carry the session's CSRF token.
func (s *Server) handle(pattern string, need role, h func(w http.ResponseWriter, r *http.Request, p *page)) {
	s.addRoute(pattern, need == roleAdmin, false)
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		}
		p, ok := s.authenticate(w, r)
		if !ok {
			return
		}
		if need == roleAdmin && !p.Admin {
			s.forbidden(w, r, p, "admin pages are for admins")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if formTooLarge(r) {
				w.WriteHeader(http.StatusRequestEntityTooLarge)
				s.renderStatus(w, p, http.StatusRequestEntityTooLarge, "Too large", tooLarge)
				return
			}
			if !sameOrigin(r) || !p.Session.checkCSRF(csrfToken(r)) {
				s.forbidden(w, r, p, "missing or wrong CSRF token")
				return
			}
		}
		h(w, r, p)
	})
}

// get registers h at "GET "+path for everybody, session or not (the
// sign-in pages only).
func (s *Server) get(path string, h http.HandlerFunc) {
	s.addRoute("GET "+path, false, true)
	s.mux.HandleFunc("GET "+path, h)
}

// authenticate resolves r's session and its user as they are now. It
// answers the request itself (and returns false) when there is none.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (*page, bool) {
	var sess *session
	if c, err := r.Cookie(s.cookieName()); err == nil {
		sess = s.sessions.get(c.Value)
	}
	if sess != nil {
		u, err := s.cfg.Store.GetUser(r.Context(), sess.user)
		switch {
		case err == nil && !u.Disabled:
			admin := u.Role == store.RoleAdmin
			return &page{Session: sess, User: u, CSRF: sess.csrf, Admin: admin, Path: r.URL.Path,
				Actor: registry.Actor{Name: "user:" + u.Name, UserID: u.ID, Admin: admin, Remote: r.RemoteAddr}}, true
		case err == nil || errors.Is(err, store.ErrNotFound):
			s.sessions.endUser(sess.user) // disabled or deleted: out at once
		default:
			s.log.Error("console: read user", "err", err)
			http.Error(w, "the coordinator could not read its store", http.StatusServiceUnavailable)
			return nil, false
		}
	}
	s.clearSessionCookie(w)
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		http.Redirect(w, r, Prefix+"login?next="+url.QueryEscape(r.URL.Path), http.StatusSeeOther)
		return nil, false
	}
	if s.cfg.Failures != nil {
		s.cfg.Failures.Record("console.no-session", r.RemoteAddr, r.Method)
	}
	http.Error(w, "sign in first", http.StatusUnauthorized)
	return nil, false
}

// forbidden refuses r with 403 and audits the refusal.
func (s *Server) forbidden(w http.ResponseWriter, r *http.Request, p *page, why string) {
	ev := audit.Event{Actor: p.Actor.Name, Action: "console.forbidden", Target: r.Method + " " + r.URL.Path,
		Remote: r.RemoteAddr, Outcome: audit.Denied, Detail: map[string]any{"reason": why}}
	if err := s.cfg.Audit.Record(context.WithoutCancel(r.Context()), ev); err != nil {
		s.log.Error("console: audit refusal", "err", err)
	}
	w.WriteHeader(http.StatusForbidden)
	s.renderStatus(w, p, http.StatusForbidden, "Forbidden", why)
}

// sameOrigin reports whether a state-changing request came from a page of
// this origin: browsers send Sec-Fetch-Site (and Origin) on such
// requests; a request with neither comes from a non-browser client, which
// the CSRF token alone protects.
func sameOrigin(r *http.Request) bool {
	if sfs := r.Header.Get("Sec-Fetch-Site"); sfs != "" && sfs != "same-origin" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return false
		}
	}
	return true
}

// formTooLarge reports whether r is a form past maxFormBytes (which
// would otherwise read as a form without its CSRF token).
func formTooLarge(r *http.Request) bool {
	if r.Header.Get("X-CSRF-Token") != "" {
		return false // a script's request: its handler reads the body
	}
	var mbe *http.MaxBytesError
	return errors.As(r.ParseForm(), &mbe)
}

// csrfToken is the token a request carries: the form field "csrf" or the
// X-CSRF-Token header (scripts).
func csrfToken(r *http.Request) string {
	if t := r.Header.Get("X-CSRF-Token"); t != "" {
		return t
	}
	return r.PostFormValue("csrf")
}

// view is what every page template gets: the page (nil on sign-in
// pages), a title and the page's own data.
type view struct {
	Page  *page
	Title string
	Data  any
}

// render executes the template name into w (buffered, so a template
// error becomes a 500 instead of half a page).
func (s *Server) render(w http.ResponseWriter, p *page, name, title string, data any) {
	var buf bytes.Buffer
	if err := s.tmpl.ExecuteTemplate(&buf, name, view{Page: p, Title: title, Data: data}); err != nil {
		s.log.Error("console: render", "template", name, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

// renderStatus renders a short page saying what went wrong (the status
// code already written).
func (s *Server) renderStatus(w http.ResponseWriter, p *page, code int, title, msg string) {
	var buf bytes.Buffer
	if err := s.tmpl.ExecuteTemplate(&buf, "status", view{Page: p, Title: title, Data: msg}); err != nil {
		fmt.Fprintf(w, "%d %s\n", code, http.StatusText(code))
		return
	}
	_, _ = w.Write(buf.Bytes())
}

// funcs are the templates' helpers; now is the console's clock.
func funcs(now func() time.Time) template.FuncMap {
	return template.FuncMap{
		"ago": func(t time.Time) string {
			if t.IsZero() {
				return "never"
			}
			return now().Sub(t).Round(time.Second).String() + " ago"
		},
		"rfc3339": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format(time.RFC3339)
		},
	}
}
