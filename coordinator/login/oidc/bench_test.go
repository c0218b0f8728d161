package oidc

import (
	"context"
	"net/http"
	"testing"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// BenchmarkLogin is one whole sign-in through the in-process provider:
// Begin, the browser's trip (start URL, the provider's login form, the
// callback: code exchange, ID token verification, userinfo, the store)
// and Wait.
func BenchmarkLogin(b *testing.B) {
	h := newHarness(b)
	b.ResetTimer()
	for b.Loop() {
		m, loginURL := h.begin()
		waited := h.waitAsync(m, loginURL)
		if status, page := newBrowser(b).Login(loginURL, "ann"); status != http.StatusOK {
			b.Fatalf("login: %d %s", status, page)
		}
		if res := <-waited; res.err != nil {
			b.Fatal(res.err)
		}
	}
}

// BenchmarkRecheck compares one user's recheck (refresh grant, ID token
// verification, claim rules, store update) with a bare refresh grant
// against the same provider, the floor any recheck pays.
func BenchmarkRecheck(b *testing.B) {
	h := newHarness(b, func(c *Config) { c.RefreshChecks = true })
	ctx := context.Background()
	b.Run("bare-refresh", func(b *testing.B) {
		u := h.loggedIn("bob")
		tok := &oauth2.Token{RefreshToken: u.RefreshToken}
		cctx := gooidc.ClientContext(ctx, h.login.cfg.HTTPClient)
		for b.Loop() {
			next, err := h.login.oauth.TokenSource(cctx, tok).Token()
			if err != nil {
				b.Fatal(err)
			}
			tok = &oauth2.Token{RefreshToken: next.RefreshToken}
		}
	})
	b.Run("recheck", func(b *testing.B) {
		u := h.loggedIn("ann")
		for b.Loop() {
			if _, err := h.login.Recheck(ctx, u); err != nil {
				b.Fatal(err)
			}
			var err error
			if u, err = h.st.GetUser(ctx, u.ID); err != nil {
				b.Fatal(err)
			}
		}
	})
}
