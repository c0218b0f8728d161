package testmesh

// Interactive login in the harness: an OpenID Provider (internal/tstest/oidctest)
// and local users for the coordinator, nodes that join without a pre-auth
// key, and a scripted browser that signs their users in, as a person would
// after "warren up" printed a sign-in URL.

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/login/choice"
	"github.com/warrenmesh/warren/coordinator/login/local"
	"github.com/warrenmesh/warren/coordinator/login/oidc"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/tstest/oidctest"
	"github.com/warrenmesh/warren/node/controlclient"
	"github.com/warrenmesh/warren/node/daemon"
	"github.com/warrenmesh/warren/node/localapi"
)

// OIDCOptions start an OpenID Provider for the mesh, with the coordinator
// registered there as a confidential client. Settings the coordinator's
// OIDC login needs beyond these come from Options.Coordinator.Login.OIDC.
type OIDCOptions struct {
	// Users are the provider's accounts (password oidctest.Password).
	Users []oidctest.User
	// AllowedDomains are the email domains that may sign in (empty: any).
	AllowedDomains []string
}

// The coordinator's registration at the test provider.
const (
	oidcClientID     = "warren"
	oidcClientSecret = "warren-secret"
)

// loginWait bounds each step of a login (the browser, the node joining).
const loginWait = 10 * time.Second

// setupLogin fills in cfg.Login for opts, given the coordinator's public
// URL, and starts the provider if OIDC is wanted.
func setupLogin(t testing.TB, cfg *coordinator.Config, opts Options, publicURL string) *oidctest.Provider {
	t.Helper()
	if opts.OIDC == nil && !opts.LocalLogin {
		return nil
	}
	if cfg.Login.PublicURL == "" {
		cfg.Login.PublicURL = publicURL
	}
	cfg.Login.Local = cfg.Login.Local || opts.LocalLogin
	if opts.OIDC == nil {
		return nil
	}
	// Refresh tokens rotate at every sign-in and refresh, as at Dex.
	op := oidctest.New(t, oidctest.Config{Users: opts.OIDC.Users, RotateRefreshTokens: true, Clients: []oidctest.Client{{
		ID: oidcClientID, Secret: oidcClientSecret, RedirectURL: cfg.Login.PublicURL + oidc.CallbackPath,
	}}})
	var oc coordinator.OIDCConfig
	if cfg.Login.OIDC != nil {
		oc = *cfg.Login.OIDC
	}
	oc.Issuer, oc.ClientID, oc.ClientSecret = op.Issuer(), oidcClientID, oidcClientSecret
	if oc.AllowedDomains == nil {
		oc.AllowedDomains = opts.OIDC.AllowedDomains
	}
	if oc.HTTPClient == nil {
		tr := &http.Transport{}
		t.Cleanup(tr.CloseIdleConnections)
		oc.HTTPClient = &http.Client{Transport: tr, Timeout: loginWait}
	}
	cfg.Login.OIDC = &oc
	return op
}

// onLoginURL records the sign-in URL the coordinator sent the node.
func (n *Node) onLoginURL(u string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.loginURL = u
	close(n.changed)
	n.changed = make(chan struct{})
}

// LoginURL waits until the coordinator gave the node a sign-in URL (it
// joined without a pre-auth key) and returns the latest, or fails when the
// client stops or timeout passes.
func (n *Node) LoginURL(timeout time.Duration) (string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		n.mu.Lock()
		u, ch, err := n.loginURL, n.changed, n.err
		n.mu.Unlock()
		if u != "" {
			return u, nil
		}
		if err != nil {
			return "", fmt.Errorf("%w before a sign-in URL came: %w", ErrStopped, err)
		}
		select {
		case <-ch:
		case <-deadline.C:
			return "", fmt.Errorf("testmesh: %s: no sign-in URL within %v", n.Name, timeout)
		}
	}
}

// SignIn signs a user in, in a fresh browser, at a sign-in URL a node was
// given, and returns the coordinator's last page.
type SignIn func(loginURL string) (status int, page string)

// AsOIDCUser signs in at the mesh's OpenID Provider as the account
// username: (the choice page →) the coordinator's start URL → the
// provider's login form → the coordinator's callback.
func (m *Mesh) AsOIDCUser(username string) SignIn {
	return func(loginURL string) (int, string) {
		m.t.Helper()
		b := oidctest.NewBrowser(m.t, oidc.CallbackPath)
		return b.Login(m.methodURL(b, loginURL, oidc.StartPath), username)
	}
}

// AsLocalUser signs in with the form for local users (the choice page →)
// as name with password and, if totpSecret is set, the current TOTP code.
// A code is accepted once: sign the same user in again in a later 30 s
// step.
func (m *Mesh) AsLocalUser(name, password, totpSecret string) SignIn {
	return func(loginURL string) (int, string) {
		m.t.Helper()
		b := oidctest.NewBrowser(m.t, "")
		form := b.Open(m.methodURL(b, loginURL, local.LoginPath))
		if form.Status != http.StatusOK {
			m.t.Fatalf("testmesh: local sign-in form: %d %s", form.Status, form.Body)
		}
		fields := map[string]string{"user": name, "password": password}
		if totpSecret != "" {
			code, err := totp.GenerateCode(totpSecret, time.Now())
			if err != nil {
				m.t.Fatalf("testmesh: TOTP code: %v", err)
			}
			fields["code"] = code
		}
		p := b.Submit(form, fields)
		return p.Status, p.Body
	}
}

// methodURL returns the sign-in URL of the method whose URL path starts
// with prefix: loginURL itself, or the link to it on the choice page that
// loginURL is when several methods are enabled.
func (m *Mesh) methodURL(b *oidctest.Browser, loginURL, prefix string) string {
	m.t.Helper()
	u, err := url.Parse(loginURL)
	if err != nil {
		m.t.Fatalf("testmesh: sign-in URL %q: %v", loginURL, err)
	}
	if !strings.HasPrefix(u.Path, choice.ChoosePath) {
		return loginURL
	}
	status, page, _ := b.Get(loginURL)
	if status != http.StatusOK {
		m.t.Fatalf("testmesh: choice page: %d %s", status, page)
	}
	for _, l := range oidctest.Links(page) {
		if t, err := u.Parse(l); err == nil && strings.HasPrefix(t.Path, prefix) {
			return t.String()
		}
	}
	m.t.Fatalf("testmesh: the choice page has no link to %s: %s", prefix, page)
	return ""
}

// Up is "warren up" without a pre-auth key: it starts a node, waits for
// the sign-in URL the coordinator gives it, signs the user in there with
// signIn, and waits until the node joined (and, with DataPlane, its data
// plane is up).
func (m *Mesh) Up(hostname string, o NodeOptions, signIn SignIn) *Node {
	m.t.Helper()
	if o.AuthKey != "" {
		m.t.Fatal("testmesh: Up is for nodes without a pre-auth key; use AddNode")
	}
	n := m.AddNode(hostname, o)
	loginURL, err := n.LoginURL(loginWait)
	if err != nil {
		m.t.Fatal(err)
	}
	if status, page := signIn(loginURL); status != http.StatusOK {
		m.t.Fatalf("testmesh: %s: sign-in ended with %d: %s", hostname, status, page)
	}
	err = n.WaitFor(loginWait, func(*controlclient.Netmap) bool { return !o.DataPlane || n.Engine() != nil })
	if err != nil {
		m.t.Fatalf("testmesh: %s did not join after its user signed in: %v", hostname, err)
	}
	return n
}

// LocalUser creates a local user with a password and, with withTOTP, an
// enrolled authenticator app; it returns the user and the TOTP secret.
func (m *Mesh) LocalUser(name, password string, withTOTP bool) (store.User, string) {
	m.t.Helper()
	ctx := context.Background()
	created := m.User(name)
	if err := m.Coord.Registry().SetUserPassword(ctx, Admin, created.ID, password); err != nil {
		m.t.Fatalf("testmesh: %v", err)
	}
	var secret string
	if withTOTP {
		var err error
		if secret, _, err = m.Coord.Registry().EnrollUserTOTP(ctx, Admin, created.ID, ""); err != nil {
			m.t.Fatalf("testmesh: %v", err)
		}
	}
	u, err := m.Coord.Store().GetUserByName(ctx, name)
	if err != nil {
		m.t.Fatalf("testmesh: local user %s: %v", name, err)
	}
	return u, secret
}

// Daemon is a node daemon (warrend's core, without its sockets) for tests
// of what "warren up" does: Up with a sign-in, re-auth, the errors a user
// sees.
type Daemon struct {
	*daemon.Daemon
	Name string
	m    *Mesh
}

// AddDaemon creates a daemon with its state in a temporary directory; it
// is closed when the test ends. It joins nothing until Up.
func (m *Mesh) AddDaemon(hostname string) *Daemon {
	m.t.Helper()
	return m.AddDaemonWith(hostname, nil)
}

// AddDaemonWith is AddDaemon with edit, if not nil, applied to the
// daemon's configuration first (a posture source, say).
func (m *Mesh) AddDaemonWith(hostname string, edit func(*daemon.Config)) *Daemon {
	m.t.Helper()
	cfg := daemon.Config{
		StateDir:   m.t.TempDir(),
		Endpoints:  []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")},
		Logger:     m.log.With("part", "daemon", "node", hostname),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	}
	if edit != nil {
		edit(&cfg)
	}
	d, err := daemon.New(cfg)
	if err != nil {
		m.t.Fatalf("testmesh: daemon %s: %v", hostname, err)
	}
	m.t.Cleanup(func() { d.Close() })
	return &Daemon{Daemon: d, Name: hostname, m: m}
}

// Up runs "warren up" on the daemon (hiding daemon.Daemon.Up) with req,
// the mesh's coordinator and the daemon's hostname filled in. When the
// daemon prints a sign-in URL, signIn signs the user in there; a nil
// signIn means no sign-in is expected, and a printed URL fails the test.
// It returns what the daemon's Up returned and the sign-in URLs it
// printed.
func (d *Daemon) Up(req localapi.UpRequest, signIn SignIn) (localapi.Status, []string, error) {
	d.m.t.Helper()
	if req.Coordinator == "" {
		req.Coordinator = d.m.URL
	}
	if req.Hostname == "" {
		req.Hostname = d.Name
	}
	ctx, cancel := context.WithTimeout(context.Background(), loginWait)
	defer cancel()
	var urls []string // progress runs on this goroutine, inside Up
	const prefix = "to finish joining, sign in at: "
	st, err := d.Daemon.Up(ctx, req, func(step string) {
		u, ok := strings.CutPrefix(step, prefix)
		if !ok {
			return
		}
		urls = append(urls, u)
		if signIn == nil {
			d.m.t.Errorf("testmesh: %s asks for a sign-in at %s", d.Name, u)
			return
		}
		signIn(u) // the daemon's session completes the join meanwhile
	})
	return st, urls, err
}
