package oidctest

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"go.uber.org/goleak"
	"golang.org/x/oauth2"
)

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.DiscardHandler)) // the login UI logs every request
	goleak.VerifyTestMain(m)
}

const callback = "http://127.0.0.1:1/cb" // never fetched: the browser stops there

var users = []User{
	{Subject: "sub-ann", Username: "ann", Email: "ann@example.com", EmailVerified: true, Groups: []string{"eng"},
		Claims: map[string]any{"hd": "example.com"}},
	{Subject: "sub-bob", Username: "bob", Email: "bob@example.com", EmailVerified: true, AMR: []string{"pwd", "otp"}, ACR: "phr"},
	{Subject: "sub-uma", Username: "uma", Email: "uma@example.com"},
}

// relyingParty is a minimal OIDC client of the provider.
type relyingParty struct {
	t        *testing.T
	ctx      context.Context
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
}

func newRelyingParty(t *testing.T, p *Provider, client Client) *relyingParty {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	ctx := oidc.ClientContext(context.Background(), &http.Client{Transport: tr, Timeout: 10 * time.Second})
	op, err := oidc.NewProvider(ctx, p.Issuer())
	if err != nil {
		t.Fatalf("discover the provider: %v", err)
	}
	ep := op.Endpoint()
	if client.Secret == "" {
		ep.AuthStyle = oauth2.AuthStyleInParams
	}
	return &relyingParty{t: t, ctx: ctx, verifier: op.Verifier(&oidc.Config{ClientID: client.ID}),
		oauth: oauth2.Config{ClientID: client.ID, ClientSecret: client.Secret, Endpoint: ep, RedirectURL: client.RedirectURL,
			Scopes: []string{oidc.ScopeOpenID, "email", "profile"}}}
}

// claims of a verified ID token the tests look at.
type claims struct {
	Subject       string   `json:"sub"`
	Email         string   `json:"email"`
	EmailVerified *bool    `json:"email_verified"`
	Groups        []string `json:"groups"`
	AMR           []string `json:"amr"`
	ACR           string   `json:"acr"`
	HD            string   `json:"hd"`
}

// login signs username in through b and returns the verified ID token's
// claims.
func (rp *relyingParty) login(b *Browser, username string) claims {
	rp.t.Helper()
	verifier, nonce, state := oauth2.GenerateVerifier(), "nonce-"+username, "state-"+username
	authURL := rp.oauth.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))
	back, err := url.Parse(b.SignIn(authURL, username))
	if err != nil || back.Query().Get("state") != state {
		rp.t.Fatalf("callback URL %v: %v", back, err)
	}
	tok, err := rp.oauth.Exchange(rp.ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		rp.t.Fatalf("exchange the code: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idTok, err := rp.verifier.Verify(rp.ctx, raw)
	if err != nil || idTok.Nonce != nonce {
		rp.t.Fatalf("verify the ID token: %v (nonce %q)", err, idTok.Nonce)
	}
	var c claims
	if err := idTok.Claims(&c); err != nil {
		rp.t.Fatal(err)
	}
	return c
}

// TestCodeFlow signs users in through the real provider with a minimal
// relying party and checks the claims the tests control.
func TestCodeFlow(t *testing.T) {
	public, web := Client{ID: "public", RedirectURL: callback, ClaimsInIDToken: true}, Client{ID: "web", Secret: "s", RedirectURL: callback}
	p := New(t, Config{Users: users, Clients: []Client{public, web}})
	rp := newRelyingParty(t, p, public)
	browser := func() *Browser { return NewBrowser(t, "/cb") }

	ann := rp.login(browser(), "ann")
	if ann.Subject != "sub-ann" || ann.Email != "ann@example.com" || ann.EmailVerified == nil || !*ann.EmailVerified ||
		!slices.Equal(ann.Groups, []string{"eng"}) || !slices.Equal(ann.AMR, []string{"pwd"}) || ann.HD != "example.com" {
		t.Fatalf("ann's claims: %+v", ann)
	}
	if bob := rp.login(browser(), "bob"); !slices.Equal(bob.AMR, []string{"pwd", "otp"}) || bob.ACR != "phr" || bob.Groups != nil {
		t.Fatalf("bob's claims: %+v", bob)
	}
	if uma := rp.login(browser(), "uma"); uma.EmailVerified == nil || *uma.EmailVerified {
		t.Fatalf("uma's email_verified: %v, want an explicit false", uma.EmailVerified)
	}

	// Without ClaimsInIDToken, email and profile come from userinfo only.
	if ann := newRelyingParty(t, p, web).login(browser(), "ann"); ann.Email != "" || !slices.Equal(ann.Groups, []string{"eng"}) {
		t.Fatalf("ann's claims at the confidential client: %+v", ann)
	}

	p.SetClaims("sub-ann", []string{"pwd", "mfa"}, []string{"ops"})
	if ann := rp.login(browser(), "ann"); !slices.Equal(ann.AMR, []string{"pwd", "mfa"}) || !slices.Equal(ann.Groups, []string{"ops"}) {
		t.Fatalf("ann's claims after SetClaims: %+v", ann)
	}
	if p.Hits("/oauth/token") != 5 {
		t.Fatalf("token endpoint hits: %d, want 5", p.Hits("/oauth/token"))
	}

	// A minted token verifies; a tampered token response does not.
	if _, err := rp.verifier.Verify(rp.ctx, p.MintIDToken(t, "public", "sub-bob", "n")); err != nil {
		t.Fatalf("minted token: %v", err)
	}
	p.SetTamper(func(raw string) string { return raw[:len(raw)-4] + "AAAA" })
	b := browser()
	back, _ := url.Parse(b.SignIn(rp.oauth.AuthCodeURL("s", oauth2.S256ChallengeOption("v")), "ann"))
	tok, err := rp.oauth.Exchange(rp.ctx, back.Query().Get("code"), oauth2.VerifierOption("v"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rp.verifier.Verify(rp.ctx, tok.Extra("id_token").(string)); err == nil {
		t.Fatal("a tampered ID token verified")
	}
}

// TestWrongPasswordStaysOnForm: the browser does not get past the login
// form without the account's password.
func TestWrongPasswordStaysOnForm(t *testing.T) {
	p := New(t, Config{Users: users, Clients: []Client{{ID: "web", Secret: "s", RedirectURL: callback}}})
	rp := newRelyingParty(t, p, Client{ID: "web", Secret: "s", RedirectURL: callback})
	b := NewBrowser(t, "/cb")
	form := b.Open(rp.oauth.AuthCodeURL("s"))
	got := b.Submit(form, map[string]string{"username": "ann", "password": "wrong"})
	if got.Location != "" || got.Status != http.StatusOK || !strings.Contains(got.Body, "<form") {
		t.Fatalf("after a wrong password: %d, location %q", got.Status, got.Location)
	}
}

// TestRevoke: refresh tokens work until the account is revoked at the
// provider; then they fail, and so does the login form. Refreshed ID
// tokens carry the account's current groups.
func TestRevoke(t *testing.T) {
	web := Client{ID: "web", Secret: "s", RedirectURL: callback}
	p := New(t, Config{Users: users, Clients: []Client{web}})
	rp := newRelyingParty(t, p, web)
	rp.oauth.Scopes = append(rp.oauth.Scopes, oidc.ScopeOfflineAccess)
	b := NewBrowser(t, "/cb")
	verifier := oauth2.GenerateVerifier()
	back, _ := url.Parse(b.SignIn(rp.oauth.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "ann"))
	tok, err := rp.oauth.Exchange(rp.ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil || tok.RefreshToken == "" {
		t.Fatalf("exchange: refresh token %q, %v", tok.RefreshToken, err)
	}
	refresh := func(rt string) (*oauth2.Token, error) {
		return rp.oauth.TokenSource(rp.ctx, &oauth2.Token{RefreshToken: rt}).Token()
	}
	p.SetClaims("sub-ann", nil, []string{"eng", "sre"})
	fresh, err := refresh(tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if fresh.RefreshToken == "" {
		t.Fatal("the refresh gave no new refresh token")
	}
	idTok, err := rp.verifier.Verify(rp.ctx, fresh.Extra("id_token").(string))
	var c claims
	if err != nil || idTok.Claims(&c) != nil || !slices.Equal(c.Groups, []string{"eng", "sre"}) {
		t.Fatalf("refreshed ID token: %+v, %v", c, err)
	}

	p.Revoke("sub-ann")
	if _, err := refresh(fresh.RefreshToken); err == nil {
		t.Fatal("a revoked account's refresh token still works")
	}
	form := b.Open(rp.oauth.AuthCodeURL("s2"))
	if got := b.Submit(form, map[string]string{"username": "ann", "password": Password}); got.Location != "" {
		t.Fatalf("a revoked account signed in: redirect to %s", got.Location)
	}
	if bob := rp.login(NewBrowser(t, "/cb"), "bob"); bob.Subject != "sub-bob" {
		t.Fatalf("bob after ann's revocation: %+v", bob)
	}
}

func TestParseFormAndLinks(t *testing.T) {
	for _, tc := range []struct {
		name, page, action string
		fields             url.Values
		links              []string
		err                bool
	}{
		{name: "form", page: `<form action="/go"><input name="a" value="1"><input name="b"><input value="nameless"></form><form action="/other"></form>`,
			action: "/go", fields: url.Values{"a": {"1"}, "b": {""}}},
		{name: "links", page: `<p><a href="/x">x</a><a>none</a><a href="https://y/z">y</a></p>`, links: []string{"/x", "https://y/z"}, err: true},
		{name: "empty", page: ``, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			action, fields, err := ParseForm(tc.page)
			if (err != nil) != tc.err || action != tc.action || (!tc.err && fields.Encode() != tc.fields.Encode()) {
				t.Fatalf("ParseForm: %q %v %v", action, fields, err)
			}
			if got := Links(tc.page); !slices.Equal(got, tc.links) {
				t.Fatalf("Links: %q, want %q", got, tc.links)
			}
		})
	}
}

// signInTokens signs username in through a new browser with offline_access
// and returns the token response.
func (rp *relyingParty) signInTokens(username string) *oauth2.Token {
	rp.t.Helper()
	verifier := oauth2.GenerateVerifier()
	back, _ := url.Parse(NewBrowser(rp.t, "/cb").SignIn(rp.oauth.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), username))
	tok, err := rp.oauth.Exchange(rp.ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil || tok.RefreshToken == "" {
		rp.t.Fatalf("exchange for %s: refresh token %q, %v", username, tok.RefreshToken, err)
	}
	return tok
}

// refresh redeems rt at the provider.
func (rp *relyingParty) refresh(rt string) (*oauth2.Token, error) {
	return rp.oauth.TokenSource(rp.ctx, &oauth2.Token{RefreshToken: rt}).Token()
}

// TestRealProviderBehaviour: the provider can act as real ones do towards
// a client that keeps refresh tokens. Each case's refresh must end as
// want says: "ok", an OAuth error code with the HTTP status, or
// "transport" (no answer).
func TestRealProviderBehaviour(t *testing.T) {
	web := Client{ID: "web", Secret: "s", RedirectURL: callback}
	for _, tc := range []struct {
		name   string
		rotate bool
		act    func(p *Provider, rp *relyingParty, rt string) string // returns the refresh token to try
		code   string                                                // "" ok, "transport", or the OAuth error
		status int
	}{
		{name: "refresh rotates", act: func(p *Provider, rp *relyingParty, rt string) string {
			fresh, err := rp.refresh(rt)
			if err != nil || fresh.RefreshToken == "" || fresh.RefreshToken == rt {
				t.Fatalf("refresh: new token %v, %v", fresh != nil && fresh.RefreshToken != rt, err)
			}
			return rt // the used one
		}, code: "invalid_grant", status: http.StatusBadRequest},
		{name: "sign-in without rotation keeps the old token", act: func(p *Provider, rp *relyingParty, rt string) string {
			rp.signInTokens("ann")
			return rt
		}},
		{name: "sign-in with rotation ends the old token", rotate: true, act: func(p *Provider, rp *relyingParty, rt string) string {
			if bob := rp.signInTokens("bob"); bob.RefreshToken == "" { // another user's sign-in changes nothing
				t.Fatal("no token for bob")
			}
			if _, err := rp.refresh(rt); err != nil {
				t.Fatalf("bob's sign-in ended ann's token: %v", err)
			}
			return rp.signInTokens("ann").RefreshToken // fine, but ends rt's successor
		}},
		{name: "revoked session", act: func(p *Provider, rp *relyingParty, rt string) string {
			p.Revoke("sub-ann")
			return rt
		}, code: "invalid_grant", status: http.StatusBadRequest},
		{name: "deleted user, as Dex answers", act: func(p *Provider, rp *relyingParty, rt string) string {
			p.Delete("sub-ann")
			return rt
		}, code: "invalid_request", status: http.StatusInternalServerError},
		{name: "unreachable", act: func(p *Provider, rp *relyingParty, rt string) string {
			p.SetDown(true)
			return rt
		}, code: "transport"},
		{name: "stalled past the client's timeout", act: func(p *Provider, rp *relyingParty, rt string) string {
			p.Stall(true)
			rp.ctx = oidc.ClientContext(context.Background(), &http.Client{Timeout: 100 * time.Millisecond})
			return rt
		}, code: "transport"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := New(t, Config{Users: users, Clients: []Client{web}, RotateRefreshTokens: tc.rotate})
			rp := newRelyingParty(t, p, web)
			rp.oauth.Scopes = append(rp.oauth.Scopes, oidc.ScopeOfflineAccess)
			rt := tc.act(p, rp, rp.signInTokens("ann").RefreshToken)
			_, err := rp.refresh(rt)
			var re *oauth2.RetrieveError
			switch {
			case tc.code == "":
				if err != nil {
					t.Fatalf("refresh: %v", err)
				}
			case tc.code == "transport":
				if err == nil || errors.As(err, &re) {
					t.Fatalf("refresh: %v, want a transport error", err)
				}
			case !errors.As(err, &re) || re.ErrorCode != tc.code || re.Response.StatusCode != tc.status:
				t.Fatalf("refresh: %v, want %s with status %d", err, tc.code, tc.status)
			}
		})
	}
}

// TestRecovers: a provider that was down or stalled answers again.
func TestRecovers(t *testing.T) {
	web := Client{ID: "web", Secret: "s", RedirectURL: callback}
	p := New(t, Config{Users: users, Clients: []Client{web}, RotateRefreshTokens: true})
	rp := newRelyingParty(t, p, web)
	rp.oauth.Scopes = append(rp.oauth.Scopes, oidc.ScopeOfflineAccess)
	rt := rp.signInTokens("ann").RefreshToken
	p.SetDown(true)
	if _, err := rp.refresh(rt); err == nil {
		t.Fatal("refresh worked while down")
	}
	p.SetDown(false)
	p.Stall(true)
	p.Stall(false)
	fresh, err := rp.refresh(rt)
	if err != nil {
		t.Fatalf("refresh after the outage: %v", err)
	}
	if _, err := rp.refresh(fresh.RefreshToken); err != nil {
		t.Fatalf("refresh with the rotated token: %v", err)
	}
}
