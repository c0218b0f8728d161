// Package oidctest is a test-only helper: a real OpenID Provider running
// in-process on loopback, and a scripted browser that signs users in at it.
//
// The provider is zitadel/oidc's op package with the in-memory storage and
// login UI its module ships (example/server/storage and exampleop), imported
// as libraries, so discovery, keys, the authorization code flow with PKCE,
// the token and userinfo endpoints and the ID token signatures are the real
// thing. What tests control is added on top: accounts with any email
// address (verified or not), groups, amr and acr (so a login can be with or
// without MFA) and extra ID token claims, changes to them between logins,
// accounts revoked or deleted at the provider (refresh tokens stop working,
// with the error answers real providers give), refresh tokens rotated at
// every sign-in as well as at every refresh, a provider that stalls or
// cannot be reached, registered clients, and a hook that rewrites ID
// tokens in token responses to play an attacker.
//
// It must never be imported by production code: its provider has a fixed,
// publicly known signing key and every account has the password Password.
// The login UI logs each request through slog's default logger; tests that
// want quiet output set slog.SetDefault in their TestMain.
package oidctest

import (
	"context"
	"encoding/json"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Password is the password of every account.
const Password = "pw"

// User is an account at the provider.
type User struct {
	// Subject is the "sub" claim; Username is typed into the login form.
	// Both are required and unique.
	Subject, Username string
	Email             string
	// EmailVerified false is sent as "email_verified": false.
	EmailVerified       bool
	FirstName, LastName string
	// Groups is sent as the "groups" claim (nil: no claim).
	Groups []string
	// AMR is sent as "amr" after a password login; nil means ["pwd"] (no
	// second factor). Put "otp" or "mfa" in it for an MFA login.
	AMR []string
	ACR string
	// Claims are more ID token (and userinfo) claims.
	Claims map[string]any
}

// Client is an application registered at the provider.
type Client struct {
	ID string
	// Secret is empty for a public (native, PKCE-only) client.
	Secret      string
	RedirectURL string
	// ClaimsInIDToken puts email, profile, groups and Claims into the ID
	// token even though an access token is issued; otherwise they come
	// from the userinfo endpoint only (as the OIDC spec prefers).
	ClaimsInIDToken bool
}

// Config configures a Provider.
type Config struct {
	Users   []User
	Clients []Client
	// RotateRefreshTokens makes every sign-in end the refresh tokens the
	// user's earlier sign-ins at the same client got, as Dex does (it
	// keeps one per user and client). Refreshes always rotate: the
	// refresh token used stops working and the answer carries a new one.
	RotateRefreshTokens bool
}

// Provider is a running OpenID Provider. Its methods are safe for
// concurrent use.
type Provider struct {
	issuer  string
	storage *testStorage
	srv     *httptest.Server
	ln      *gateListener
	ended   chan struct{} // closed when the test ends: stalled requests return

	mu     sync.Mutex
	tamper func(idToken string) string // rewrites ID tokens in token responses
	hits   map[string]int              // requests by path
	stall  bool                        // token requests are never answered
}

// New starts a provider on loopback for t and stops it when t ends. The
// issuer is its http:// base URL.
func New(t testing.TB, cfg Config) *Provider {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	ln := &gateListener{Listener: srv.Listener}
	srv.Listener = ln
	p := &Provider{issuer: "http://" + ln.Addr().String(), hits: map[string]int{}, srv: srv, ln: ln,
		ended: make(chan struct{})}
	clients := make(map[string]*storage.Client, len(cfg.Clients))
	asserting := map[string]bool{}
	for _, c := range cfg.Clients {
		if c.Secret == "" {
			clients[c.ID] = storage.NativeClient(c.ID, c.RedirectURL)
		} else {
			clients[c.ID] = storage.WebClient(c.ID, c.Secret, c.RedirectURL)
		}
		asserting[c.ID] = c.ClaimsInIDToken
	}
	users := userStore{byID: map[string]*User{}, byName: map[string]*storage.User{}}
	for _, u := range cfg.Users {
		if u.Subject == "" || u.Username == "" {
			srv.Close()
			t.Fatalf("oidctest: user %+v needs a subject and a user name", u)
		}
		u := u
		u.Groups, u.AMR, u.Claims = slices.Clone(u.Groups), slices.Clone(u.AMR), maps.Clone(u.Claims)
		users.byID[u.Subject] = &u
		users.byName[u.Username] = &storage.User{ID: u.Subject, Username: u.Username, Password: Password,
			FirstName: u.FirstName, LastName: u.LastName, Email: u.Email, EmailVerified: u.EmailVerified}
	}
	p.storage = &testStorage{
		Storage:      storage.NewStorageWithClients(users, clients),
		users:        users,
		assertClaims: asserting,
		rotate:       cfg.RotateRefreshTokens,
		overrides:    map[string]override{},
		revoked:      map[string]bool{},
		deleted:      map[string]bool{},
	}
	router := exampleop.SetupServer(p.issuer, p.storage, nil, false)
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		tamper, stall := p.tamper, p.stall
		p.hits[r.URL.Path]++
		p.mu.Unlock()
		token := strings.HasSuffix(r.URL.Path, "/oauth/token")
		if token && stall {
			// A provider too slow for its clients: the request is never
			// processed (so a refresh token it carries is not rotated away
			// behind the client's back).
			select {
			case <-r.Context().Done():
			case <-p.ended:
			}
			return
		}
		if token && p.storage.refreshOfDeleted(r) {
			// Dex's answer for a user its connector no longer knows.
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"error":"invalid_request","error_description":"user not found"}`))
			return
		}
		if tamper == nil || !token {
			router.ServeHTTP(w, r)
			return
		}
		serveTampered(w, r, router, tamper)
	})
	srv.Start()
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(p.ended) }) // runs first: stalled requests end before Close waits for them
	return p
}

// serveTampered serves r and rewrites the ID token in the response.
func serveTampered(w http.ResponseWriter, r *http.Request, h http.Handler, tamper func(string) string) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	body := rec.Body.Bytes()
	var resp map[string]any
	if rec.Code == http.StatusOK && json.Unmarshal(body, &resp) == nil {
		if raw, ok := resp["id_token"].(string); ok {
			resp["id_token"] = tamper(raw)
			body, _ = json.Marshal(resp)
		}
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.Header().Del("Content-Length")
	w.WriteHeader(rec.Code)
	_, _ = w.Write(body)
}

// Issuer returns the provider's issuer URL (also its base URL).
func (p *Provider) Issuer() string { return p.issuer }

// Hits returns how many requests the provider served at path.
func (p *Provider) Hits(path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits[path]
}

// SetTamper makes the provider rewrite the ID token of every token
// response with f (nil: stop).
func (p *Provider) SetTamper(f func(idToken string) string) {
	p.mu.Lock()
	p.tamper = f
	p.mu.Unlock()
}

// SetClaims makes later logins of subject carry amr (nil: ["pwd"]) and
// groups, as if the user's account changed at the provider.
func (p *Provider) SetClaims(subject string, amr, groups []string) {
	p.storage.mu.Lock()
	defer p.storage.mu.Unlock()
	p.storage.overrides[subject] = override{slices.Clone(amr), slices.Clone(groups)}
}

// Revoke makes the provider refuse subject from now on, as if the user's
// sessions were revoked at the identity provider (or the account
// disabled): the login form rejects it and its refresh tokens are refused
// with invalid_grant.
func (p *Provider) Revoke(subject string) {
	p.storage.mu.Lock()
	defer p.storage.mu.Unlock()
	p.storage.revoked[subject] = true
}

// Delete makes the provider forget subject, as if the account was deleted
// at the identity provider: the login form rejects it and a refresh with
// its tokens is answered as Dex answers it, with the OAuth error
// invalid_request and HTTP status 500.
func (p *Provider) Delete(subject string) {
	p.storage.mu.Lock()
	defer p.storage.mu.Unlock()
	p.storage.deleted[subject] = true
}

// Stall makes the token endpoint slower than any client will wait (true)
// or answer again (false). A request that arrives while it stalls hangs
// until the client gives up or the test ends, and is never processed.
// Discovery, keys and the login pages keep answering.
func (p *Provider) Stall(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stall = on
}

// SetDown makes the provider unreachable (true) or reachable again
// (false). While down, every connection to it is cut at once, those open
// now and new ones, so clients get transport errors and no answer.
func (p *Provider) SetDown(down bool) {
	p.ln.setDown(down)
	if down {
		p.srv.CloseClientConnections()
	}
}

// MintIDToken issues an ID token as the provider would for client,
// subject and nonce, with the user's claims, valid for an hour. t fails if
// the client is unknown.
func (p *Provider) MintIDToken(t testing.TB, client, subject, nonce string) string {
	t.Helper()
	ctx := context.Background()
	c, err := p.storage.GetClientByClientID(ctx, client)
	if err != nil {
		t.Fatalf("oidctest: mint: client %s: %v", client, err)
	}
	req := &authRequest{
		AuthRequest: &storage.AuthRequest{ApplicationID: client, UserID: subject, Nonce: nonce,
			Scopes: []string{oidc.ScopeOpenID, oidc.ScopeEmail, oidc.ScopeProfile}},
		s: p.storage,
	}
	tok, err := op.CreateIDToken(ctx, p.issuer, req, time.Hour, "", "", p.storage, c)
	if err != nil {
		t.Fatalf("oidctest: mint ID token: %v", err)
	}
	return tok
}

// gateListener is the provider's listener; while down it closes every
// connection it accepts, so the provider cannot be reached.
type gateListener struct {
	net.Listener

	mu   sync.Mutex
	down bool
}

func (l *gateListener) setDown(down bool) {
	l.mu.Lock()
	l.down = down
	l.mu.Unlock()
}

func (l *gateListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		down := l.down
		l.mu.Unlock()
		if !down {
			return c, nil
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // reset, as a host with nothing listening does
		}
		_ = c.Close()
	}
}
