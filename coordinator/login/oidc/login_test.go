package oidc

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/store"
)

// TestFullLogin drives the whole flow through the provider for both client
// kinds: the confidential client, whose email comes from the userinfo
// endpoint, and the public PKCE-only client, whose ID token carries it.
func TestFullLogin(t *testing.T) {
	for _, tc := range []struct {
		name         string
		opt          func(*Config)
		wantUserinfo bool
	}{
		{"confidential", func(*Config) {}, true},
		{"public", func(c *Config) { c.ClientID, c.ClientSecret = clientPublic, "" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.opt)
			m, loginURL := h.begin()
			if !strings.HasPrefix(loginURL, h.url+StartPath) {
				t.Fatalf("Begin returned %q, want a URL under %s", loginURL, h.url+StartPath)
			}
			waited := h.waitAsync(m, loginURL)
			status, page := newBrowser(t).Login(loginURL, "ann")
			if status != http.StatusOK || !strings.Contains(page, "Signed in as ann@example.com") {
				t.Fatalf("callback page: %d %s", status, page)
			}
			res := <-waited
			if res.err != nil {
				t.Fatalf("Wait: %v", res.err)
			}
			u := res.user
			if u.Name != "ann@example.com" || u.Email != "ann@example.com" || u.Role != store.RoleMember ||
				u.Issuer != h.op.Issuer() || u.Subject != "sub-ann" || !slices.Equal(u.Groups, []string{"eng", "ops"}) {
				t.Fatalf("user = %+v", u)
			}
			if used := h.op.Hits("/userinfo") > 0; used != tc.wantUserinfo {
				t.Errorf("userinfo endpoint used = %v, want %v", used, tc.wantUserinfo)
			}
			if !u.MFAAt.IsZero() {
				t.Errorf("MFAAt = %v after a password-only login", u.MFAAt)
			}
			stored, err := h.st.GetUserByIdentity(context.Background(), h.op.Issuer(), "sub-ann")
			if err != nil || stored.ID != u.ID {
				t.Fatalf("stored user: %+v, %v", stored, err)
			}
			ev := h.lastAudit()
			if ev.Outcome != "ok" || ev.Actor != "user:ann@example.com" || !strings.Contains(ev.Detail, `"created"`) {
				t.Fatalf("audit = %+v", ev)
			}
			// The outcome is handed out once: the login is over.
			if _, err := h.login.Wait(context.Background(), m, loginURL); !errors.Is(err, ErrUnknownLogin) {
				t.Fatalf("second Wait: %v, want %v", err, ErrUnknownLogin)
			}
		})
	}
}

// TestMFA checks that amr and acr values meaning a second factor set
// MFAAt, and that a later login without one keeps the old time.
func TestMFA(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MFAACRs = []string{"phr"} })
	for _, tc := range []struct {
		user    string
		wantMFA bool
	}{
		{"ann", false}, // amr ["pwd"]
		{"bob", true},  // amr ["pwd", "otp"]
		{"cat", true},  // acr "phr"
	} {
		t.Run(tc.user, func(t *testing.T) {
			m, loginURL := h.begin()
			waited := h.waitAsync(m, loginURL)
			if status, page := newBrowser(t).Login(loginURL, tc.user); status != http.StatusOK {
				t.Fatalf("callback page: %d %s", status, page)
			}
			res := <-waited
			if res.err != nil {
				t.Fatalf("Wait: %v", res.err)
			}
			if got := !res.user.MFAAt.IsZero(); got != tc.wantMFA {
				t.Fatalf("MFA recorded = %v (MFAAt %v), want %v", got, res.user.MFAAt, tc.wantMFA)
			}
			if tc.wantMFA && !res.user.MFAAt.Equal(h.clock.Now()) {
				t.Fatalf("MFAAt = %v, want the login time %v", res.user.MFAAt, h.clock.Now())
			}
		})
	}

	// A later login of bob without a second factor keeps his MFA time,
	// and a group change is reported.
	bob, err := h.st.GetUserByIdentity(context.Background(), h.op.Issuer(), "sub-bob")
	if err != nil {
		t.Fatal(err)
	}
	h.op.SetClaims("sub-bob", []string{"pwd"}, []string{"eng", "sre"})
	h.clock.Advance(time.Minute)
	m, loginURL := h.begin()
	waited := h.waitAsync(m, loginURL)
	newBrowser(t).Login(loginURL, "bob")
	res := <-waited
	if res.err != nil {
		t.Fatalf("Wait: %v", res.err)
	}
	if !res.user.MFAAt.Equal(bob.MFAAt) {
		t.Fatalf("MFAAt = %v after a login without MFA, want the earlier %v", res.user.MFAAt, bob.MFAAt)
	}
	if !slices.Equal(res.user.Groups, []string{"eng", "sre"}) {
		t.Fatalf("groups = %v, want [eng sre]", res.user.Groups)
	}
	if got := h.changedUsers(); !slices.Contains(got, bob.ID) {
		t.Fatalf("users changed %v, want one for bob (%d)", got, bob.ID)
	}
}
