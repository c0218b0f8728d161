package oidc

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/login"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/tstest/oidctest"
)

// expectDenied checks the newest audit event is a refusal mentioning want,
// and that no audit event holds a JWT.
// expectDenied checks that the newest refusal mentions want: an audit
// event when the provider identified the person, else a counted failure
// (whose log line carries the reason), never a stored row.
func expectDenied(t *testing.T, h *harness, want string) {
	t.Helper()
	line := h.failLog.LastLine()
	if strings.Contains(line, want) && strings.Contains(line, `"kind":"login.oidc"`) {
		noTokensAudited(t, h)
		if strings.Contains(line, "eyJ") || strings.Contains(line, clientSecret) {
			t.Fatalf("failure line holds a token or secret: %s", line)
		}
		return
	}
	ev := h.lastAudit()
	if ev.Outcome != "denied" || !strings.Contains(ev.Detail, want) || !strings.HasPrefix(ev.Actor, "user:") {
		t.Fatalf("newest audit event = %+v and failure line %s; want a denial mentioning %q", ev, line, want)
	}
	noTokensAudited(t, h)
}

// noTokensAudited fails if an audit event looks like it holds a token.
func noTokensAudited(t *testing.T, h *harness) {
	t.Helper()
	for _, e := range h.auditEvents() {
		if strings.Contains(e.Detail, "eyJ") || strings.Contains(e.Detail, clientSecret) {
			t.Fatalf("audit event holds a token or secret: %+v", e)
		}
	}
}

// noUsers fails if the store has any user.
func noUsers(t *testing.T, h *harness) {
	t.Helper()
	users, err := h.st.ListUsers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 0 {
		t.Fatalf("users were created: %+v", users)
	}
}

// TestVerifyIDToken checks the verification the callback applies to the
// raw ID token from the token endpoint, with tokens minted by real
// providers.
func TestVerifyIDToken(t *testing.T) {
	h := newHarness(t)
	other := newTestOP(t, h.url+CallbackPath) // a second provider: another issuer and key
	const nonce = "the-nonce"
	good := h.op.MintIDToken(t, clientWeb, "sub-ann", nonce)

	tampered := unverifiedClaims(t, good)
	tampered["email"] = "mallory@example.com"
	noneAlg := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		strings.Split(good, ".")[1] + "."
	for _, tc := range []struct {
		name, raw, nonce, want string
	}{
		{"valid", good, nonce, ""},
		{"flipped signature", flipSignature(good), nonce, "did not verify"},
		{"changed payload", withPayload(t, good, tampered), nonce, "did not verify"},
		{"alg none", noneAlg, nonce, "did not verify"},
		{"other issuer", other.MintIDToken(t, clientWeb, "sub-ann", nonce), nonce, "did not verify"},
		{"other audience", h.op.MintIDToken(t, clientOther, "sub-ann", nonce), nonce, "audience"},
		{"other nonce", good, "another-nonce", "nonce"},
		{"no nonce expected", good, "", "nonce"},
		{"empty", "", nonce, "no ID token"},
		{"garbage", "not.a.jwt", nonce, "did not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := h.login.verifyIDToken(context.Background(), tc.raw, tc.nonce)
			if tc.want == "" {
				if err != nil || tok.Subject != "sub-ann" {
					t.Fatalf("verify: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("verify: err = %v, want a refusal mentioning %q", err, tc.want)
			}
		})
	}

	t.Run("expired", func(t *testing.T) {
		h.clock.Advance(2 * time.Hour) // minted tokens live one hour
		defer h.clock.Advance(-2 * time.Hour)
		if _, err := h.login.verifyIDToken(context.Background(), good, nonce); err == nil || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("verify expired token: %v", err)
		}
	})
}

// TestBadTokenThroughCallback drives bad ID tokens through the real flow:
// the provider's token response is rewritten as an attacker between the
// coordinator and the provider (or a broken provider) would.
func TestBadTokenThroughCallback(t *testing.T) {
	h := newHarness(t)
	other := newTestOP(t, h.url+CallbackPath)
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, raw string) string
		want   string
	}{
		{"flipped signature", func(_ *testing.T, raw string) string { return flipSignature(raw) }, "did not verify"},
		{"changed payload", func(t *testing.T, raw string) string {
			c := unverifiedClaims(t, raw)
			c["sub"] = "sub-bob"
			return withPayload(t, raw, c)
		}, "did not verify"},
		{"other issuer", func(t *testing.T, raw string) string {
			c := unverifiedClaims(t, raw)
			return other.MintIDToken(t, clientWeb, c["sub"].(string), c["nonce"].(string))
		}, "did not verify"},
		{"other audience", func(t *testing.T, raw string) string {
			c := unverifiedClaims(t, raw)
			return h.op.MintIDToken(t, clientOther, c["sub"].(string), c["nonce"].(string))
		}, "audience"},
		{"replayed token of another login", func(t *testing.T, raw string) string {
			c := unverifiedClaims(t, raw)
			return h.op.MintIDToken(t, clientWeb, c["sub"].(string), "nonce-of-another-login")
		}, "nonce"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.op.SetTamper(func(raw string) string { return tc.tamper(t, raw) })
			defer h.op.SetTamper(nil)
			m, loginURL := h.begin()
			waited := h.waitAsync(m, loginURL)
			status, page := newBrowser(t).Login(loginURL, "ann")
			if status != http.StatusForbidden || !strings.Contains(page, "Sign-in refused") {
				t.Fatalf("callback page: %d %s", status, page)
			}
			if res := <-waited; !errors.Is(res.err, ErrRefused) {
				t.Fatalf("Wait: %+v, want a refusal", res)
			}
			expectDenied(t, h, tc.want)
			noUsers(t, h)
		})
	}
}

// TestStateSingleUse replays a completed callback, in the same browser and
// in another one: both are refused and the first login stands.
func TestStateSingleUse(t *testing.T) {
	h := newHarness(t)
	m, loginURL := h.begin()
	waited := h.waitAsync(m, loginURL)
	b := newBrowser(t)
	callbackURL := b.SignIn(loginURL, "ann")
	if status, _, _ := b.Get(callbackURL); status != http.StatusOK {
		t.Fatalf("first callback: %d", status)
	}
	first := <-waited
	if first.err != nil {
		t.Fatalf("Wait: %v", first.err)
	}
	for _, replayer := range []*oidctest.Browser{b, newBrowser(t)} {
		status, page, _ := replayer.Get(callbackURL)
		if status != http.StatusBadRequest || !strings.Contains(page, "already used") {
			t.Fatalf("replayed callback: %d %s", status, page)
		}
		expectDenied(t, h, "already used")
	}
	if u, err := h.st.GetUser(context.Background(), first.user.ID); err != nil || u.Name != first.user.Name {
		t.Fatalf("the first login's user after replays: %+v, %v", u, err)
	}
	// A forged state never matches.
	if status, _, _ := b.Get(h.url + CallbackPath + "?code=x&state=forged"); status != http.StatusBadRequest {
		t.Fatalf("forged state: %d", status)
	}
}

// TestOtherBrowser refuses a callback that arrives in a browser other than
// the one that opened the login link (no binding cookie).
func TestOtherBrowser(t *testing.T) {
	h := newHarness(t)
	m, loginURL := h.begin()
	waited := h.waitAsync(m, loginURL)
	callbackURL := newBrowser(t).SignIn(loginURL, "ann")
	status, page, _ := newBrowser(t).Get(callbackURL)
	if status != http.StatusBadRequest || !strings.Contains(page, "different browser") {
		t.Fatalf("callback in another browser: %d %s", status, page)
	}
	if res := <-waited; !errors.Is(res.err, ErrRefused) {
		t.Fatalf("Wait: %+v, want a refusal", res)
	}
	expectDenied(t, h, "different browser")
	noUsers(t, h)
}

// TestPKCEVerifierChecked shows the code is bound to this login's PKCE
// verifier: with a different verifier the provider refuses the exchange.
func TestPKCEVerifierChecked(t *testing.T) {
	h := newHarness(t)
	m, loginURL := h.begin()
	waited := h.waitAsync(m, loginURL)
	b := newBrowser(t)
	callbackURL := b.SignIn(loginURL, "ann")
	id := strings.TrimPrefix(loginURL, h.login.startBase)
	if err := h.login.table.With(id, func(e *login.Entry[visitState]) error {
		e.State.verifier = strings.Repeat("x", 43)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	status, _, _ := b.Get(callbackURL)
	if status != http.StatusBadGateway {
		t.Fatalf("callback with a wrong verifier: %d", status)
	}
	if res := <-waited; res.err == nil {
		t.Fatal("Wait succeeded with a wrong PKCE verifier")
	}
	if line := h.failLog.LastLine(); !strings.Contains(line, "exchanging the authorization code") {
		t.Fatalf("failure line = %s", line)
	}
	noUsers(t, h)
}

// TestProviderError shows the provider's refusal (here: the user cancels)
// to the user and to Wait.
func TestProviderError(t *testing.T) {
	h := newHarness(t)
	m, loginURL := h.begin()
	waited := h.waitAsync(m, loginURL)
	b := newBrowser(t)
	stop := *b.Client
	stop.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := stop.Get(loginURL)
	if err != nil {
		t.Fatal(err)
	}
	_, _, authURL := b.Read(resp)
	u, err := url.Parse(authURL)
	if err != nil || u.Query().Get("code_challenge_method") != "S256" || u.Query().Get("nonce") == "" {
		t.Fatalf("authorization URL %q lacks PKCE S256 or nonce", authURL)
	}
	q := url.Values{"state": {u.Query().Get("state")}, "error": {"access_denied"}, "error_description": {"<b>cancelled</b>"}}
	status, page, _ := b.Get(h.url + CallbackPath + "?" + q.Encode())
	if status != http.StatusForbidden || !strings.Contains(page, "access_denied") || strings.Contains(page, "<b>") {
		t.Fatalf("callback with an error: %d %s", status, page)
	}
	if res := <-waited; !errors.Is(res.err, ErrRefused) {
		t.Fatalf("Wait: %+v, want a refusal", res)
	}
	expectDenied(t, h, "access_denied")
}

// TestClaimRules refuses logins whose claims break a rule, creating no
// user, and accepts the one that satisfies them.
func TestClaimRules(t *testing.T) {
	for _, tc := range []struct {
		name, user string
		opt        func(*Config)
		want       string // "" for success
	}{
		{"domain not allowed", "eve", func(c *Config) { c.AllowedDomains = []string{"Example.com"} }, "domain evil.test"},
		{"domain allowed", "ann", func(c *Config) { c.AllowedDomains = []string{"@example.com"} }, ""},
		{"email not verified", "uma", func(*Config) {}, "not verified"},
		{"required claim present", "ann", func(c *Config) { c.RequiredClaims = map[string]string{"hd": "example.com"} }, ""},
		{"required claim missing", "bob", func(c *Config) { c.RequiredClaims = map[string]string{"hd": "example.com"} }, `claim \"hd\"`},
		{"required claim differs", "ann", func(c *Config) { c.RequiredClaims = map[string]string{"hd": "other.com"} }, `claim \"hd\"`},
		{"groups claim malformed", "ann", func(c *Config) { c.GroupsClaim = "email_verified" }, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.opt)
			m, loginURL := h.begin()
			waited := h.waitAsync(m, loginURL)
			status, page := newBrowser(t).Login(loginURL, tc.user)
			res := <-waited
			if tc.want == "" {
				if status != http.StatusOK || res.err != nil {
					t.Fatalf("login: %d %s; Wait: %v", status, page, res.err)
				}
				return
			}
			if status != http.StatusForbidden || !errors.Is(res.err, ErrRefused) {
				t.Fatalf("login: %d %s; Wait: %+v", status, page, res)
			}
			expectDenied(t, h, tc.want)
			noUsers(t, h)
		})
	}
}

// TestDisabledUser refuses a disabled account and says so to Wait.
func TestDisabledUser(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	m, loginURL := h.begin()
	waited := h.waitAsync(m, loginURL)
	newBrowser(t).Login(loginURL, "ann")
	ann := (<-waited).user
	ann.Disabled = true
	if err := h.st.UpdateUser(ctx, ann); err != nil {
		t.Fatal(err)
	}

	m, loginURL = h.begin()
	waited = h.waitAsync(m, loginURL)
	status, page := newBrowser(t).Login(loginURL, "ann")
	if status != http.StatusForbidden || !strings.Contains(page, "disabled") {
		t.Fatalf("login of a disabled user: %d %s", status, page)
	}
	res := <-waited
	if !errors.Is(res.err, ErrAccountDisabled) || !strings.Contains(res.err.Error(), "disabled") {
		t.Fatalf("Wait: %+v, want ErrAccountDisabled", res)
	}
	expectDenied(t, h, "disabled")
	if u, _ := h.st.GetUser(ctx, ann.ID); !u.Disabled {
		t.Fatal("the login re-enabled the user")
	}
}

// TestExistingUsers binds an admin-created user of the same name, and
// refuses names that belong to another identity or a local account.
func TestExistingUsers(t *testing.T) {
	for _, tc := range []struct {
		name string
		pre  store.User
		want string // "" for success (bound)
	}{
		{"bind placeholder", store.User{Name: "bob@example.com", Role: store.RoleAdmin}, ""},
		{"other identity", store.User{Name: "bob@example.com", Role: store.RoleMember, Issuer: "https://elsewhere", Subject: "x"}, "another identity"},
		{"local account", store.User{Name: "bob@example.com", Role: store.RoleMember, PasswordHash: "$argon2id$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA"}, "local account"},
		{"disabled placeholder", store.User{Name: "bob@example.com", Role: store.RoleMember, Disabled: true}, "disabled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			pre, err := h.st.CreateUser(context.Background(), tc.pre)
			if err != nil {
				t.Fatal(err)
			}
			m, loginURL := h.begin()
			waited := h.waitAsync(m, loginURL)
			status, page := newBrowser(t).Login(loginURL, "bob")
			res := <-waited
			if tc.want != "" {
				if status != http.StatusForbidden || !errors.Is(res.err, ErrRefused) {
					t.Fatalf("login: %d %s; Wait: %+v", status, page, res)
				}
				expectDenied(t, h, tc.want)
				return
			}
			u := res.user
			if res.err != nil || u.ID != pre.ID || u.Role != store.RoleAdmin || u.Subject != "sub-bob" || u.Issuer != h.op.Issuer() {
				t.Fatalf("bound user: %+v, %v", u, res.err)
			}
			if ev := h.lastAudit(); !strings.Contains(ev.Detail, `"bound"`) {
				t.Fatalf("audit = %+v", ev)
			}
		})
	}
}
