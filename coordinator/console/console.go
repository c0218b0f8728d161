// Package console is the coordinator's web console at /admin/: pages for
// admins (overview, users, nodes, pre-auth keys, policy, audit, access
// requests) and for members (their own devices, what they can reach,
// their access requests), rendered on the server with html/template,
// working without JavaScript for reading, with a little progressive
// enhancement from vendored, embedded scripts (static/, with their
// licenses).
//
// It must never decide authorization on its own: every change goes
// through the same registry, access and policyfile methods the admin API
// and the CLI use, with the signed-in person resolved as they are now
// (registry.Actor) on every request; a disabled user's session stops
// working at once. It must never serve a page or a change without a
// session (except the sign-in pages), never accept a form without the
// session's CSRF token, never set a cookie that is not Secure (unless
// Config.InsecureCookies, for plain-HTTP tests on loopback), HttpOnly and
// SameSite=Strict, never send inline script (the Content-Security-Policy
// forbids it), and never log or render a secret other than a pre-auth
// key's, once, to its creator.
package console

import (
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/warrenmesh/warren/coordinator/access"
	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/login"
	"github.com/warrenmesh/warren/coordinator/netmap"
	"github.com/warrenmesh/warren/coordinator/policyfile"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/wire"
)

// Prefix is where the console is served.
const Prefix = "/admin/"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config configures a Server.
type Config struct {
	Registry *registry.Registry // required
	Store    store.Store        // required
	Audit    *audit.Log         // required
	// Failures counts refused requests that carry no session (never
	// stored: anyone can send them); nil: not counted.
	Failures *audit.Failures
	Policy   *policyfile.Manager // required
	Engine   *netmap.Engine      // required
	Access   *access.Service     // nil: no access pages
	// DERPMap is the relay regions nodes get (nil: none), and
	// RelayClients the clients connected to the embedded relay now (nil,
	// or false: no embedded relay); for the overview.
	DERPMap      *wire.DERPMap
	RelayClients func() (int, bool)
	// Login is the coordinator's interactive sign-in (OIDC, local, or the
	// choice of both); nil: nobody can sign in to the console.
	Login  login.Login
	Logger *slog.Logger
	Now    func() time.Time // nil: time.Now

	// IdleTimeout ends a session unused this long (default 30 min);
	// MaxAge ends any session this long after sign-in (default 12 h).
	IdleTimeout, MaxAge time.Duration
	// MaxSessions bounds the sessions held (default 10,000): signing in
	// past it ends the least recently used.
	MaxSessions int
	// InsecureCookies drops the Secure attribute (tests over plain HTTP
	// on loopback only).
	InsecureCookies bool
}

// Server serves the console.
type Server struct {
	cfg      Config
	log      *slog.Logger
	mux      *http.ServeMux
	tmpl     *template.Template
	sessions *sessions
	live     liveStreams // admin_events.go
	pending  *pendingLogins
	// routeList is every route registered, for tests that walk every
	// page.
	routeList []Route
}

// New returns a console server.
func New(cfg Config) (*Server, error) {
	if cfg.Registry == nil || cfg.Store == nil || cfg.Audit == nil || cfg.Policy == nil || cfg.Engine == nil {
		return nil, errors.New("console: Registry, Store, Audit, Policy and Engine are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Minute
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 12 * time.Hour
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 10_000
	}
	tmpl, err := template.New("").Funcs(funcs(cfg.Now)).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), tmpl: tmpl,
		sessions: newSessions(cfg.Now, cfg.IdleTimeout, cfg.MaxAge, cfg.MaxSessions), pending: newPendingLogins(cfg.Now)}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	s.mux.Handle("GET "+Prefix+"static/", http.StripPrefix(Prefix+"static/", staticHandler(static)))
	s.routeList = append(s.routeList, Route{Method: http.MethodGet, Path: Prefix + "static/", Public: true})
	s.routes()
	return s, nil
}

// Handler serves everything under Prefix.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setHeaders(w.Header())
		s.mux.ServeHTTP(w, r)
	})
}

// routes registers every page. Each group of pages registers its own in
// its file.
func (s *Server) routes() {
	s.signInRoutes()
	s.memberRoutes()
	s.adminRoutes()
	s.policyRoutes()
	// Anything else under the prefix needs a session before it is even
	// found: without one every path answers alike.
	s.handle(Prefix, roleMember, func(w http.ResponseWriter, r *http.Request, p *page) {
		w.WriteHeader(http.StatusNotFound)
		s.renderStatus(w, p, http.StatusNotFound, "Not found", "There is no such page.")
	})
}

// Route is one route of the console.
type Route struct {
	// Method is "GET", "POST", …, or "" for any; Path is the pattern's
	// path ("/admin/nodes/{id}").
	Method, Path string
	// Admin: for admins only; Public: served without a session (the
	// sign-in pages and static files).
	Admin, Public bool
}

// Routes returns every route the console serves, for tests that check
// something of every page.
func (s *Server) Routes() []Route { return append([]Route(nil), s.routeList...) }

// addRoute records pattern ("GET /admin/x" or "/admin/x").
func (s *Server) addRoute(pattern string, admin, public bool) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = "", pattern
	}
	s.routeList = append(s.routeList, Route{Method: method, Path: path, Admin: admin, Public: public})
}

// maxFormBytes bounds a submitted form.
const maxFormBytes = 1 << 20

// setHeaders sets what every console response carries: no caching, no
// framing, no sniffing, no referrer, and a content policy that allows
// scripts and styles from the console's own static files only (no inline
// script, no eval), forms posted back to the console, and fetches and
// server-sent events to the same origin.
func setHeaders(h http.Header) {
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
}

// staticHandler serves the embedded static files (cacheable: they change
// only with the binary).
func staticHandler(fsys fs.FS) http.Handler {
	fh := http.FileServerFS(fsys)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fh.ServeHTTP(w, r)
	})
}
