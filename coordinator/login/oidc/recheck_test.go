package oidc

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/coordinator/store"
)

// loggedIn signs username in through the provider and returns the stored
// user.
func (h *harness) loggedIn(username string) store.User {
	h.t.Helper()
	m, loginURL := h.begin()
	waited := h.waitAsync(m, loginURL)
	if status, page := newBrowser(h.t).Login(loginURL, username); status != http.StatusOK {
		h.t.Fatalf("login of %s: %d %s", username, status, page)
	}
	res := <-waited
	if res.err != nil {
		h.t.Fatalf("login of %s: %v", username, res.err)
	}
	u, err := h.st.GetUser(context.Background(), res.user.ID)
	if err != nil {
		h.t.Fatal(err)
	}
	return u
}

// failingTransport stands for a provider that cannot be reached.
type failingTransport struct{}

func (failingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("connection refused")
}

func TestRecheck(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.RefreshChecks = true })
	ctx := context.Background()
	if !slices.Contains(h.login.oauth.Scopes, "offline_access") {
		t.Fatalf("scopes %v: no offline_access with RefreshChecks", h.login.oauth.Scopes)
	}
	ann, bob := h.loggedIn("ann"), h.loggedIn("bob")
	if ann.RefreshToken == "" || bob.RefreshToken == "" {
		t.Fatal("no refresh token kept")
	}
	for _, ev := range h.auditEvents() {
		if strings.Contains(ev.Detail, ann.RefreshToken) {
			t.Fatal("the audit log holds a refresh token")
		}
	}
	// A local user and a disabled one are not asked about.
	if _, err := h.st.CreateUser(ctx, store.User{Name: "local", Role: store.RoleMember, PasswordHash: "x"}); err != nil {
		t.Fatal(err)
	}

	sum, err := h.login.RecheckAll(ctx)
	if err != nil || sum != (RecheckSummary{Checked: 2}) {
		t.Fatalf("quiet round: %+v, %v", sum, err)
	}

	// Groups changed at the provider reach the user; MFA does not come
	// from a refresh.
	h.op.SetClaims("sub-ann", []string{"pwd", "otp"}, []string{"ops"})
	h.changed = nil
	sum, err = h.login.RecheckAll(ctx)
	if err != nil || sum != (RecheckSummary{Checked: 2, Updated: 1}) {
		t.Fatalf("round after a group change: %+v, %v", sum, err)
	}
	got, _ := h.st.GetUser(ctx, ann.ID)
	if !slices.Equal(got.Groups, []string{"ops"}) || !got.MFAAt.IsZero() || got.RefreshToken == "" {
		t.Fatalf("ann after the recheck: groups %v, MFA %v, token kept %v", got.Groups, got.MFAAt, got.RefreshToken != "")
	}
	if c := h.changedUsers(); !slices.Equal(c, []store.UserID{ann.ID}) {
		t.Fatalf("users changed %v", c)
	}

	// An unreachable provider changes nothing.
	before, _ := h.st.GetUser(ctx, bob.ID)
	saved := h.login.cfg.HTTPClient
	h.login.cfg.HTTPClient = &http.Client{Transport: failingTransport{}}
	sum, err = h.login.RecheckAll(ctx)
	h.login.cfg.HTTPClient = saved
	if revoked, _ := h.revokedUsers(); err != nil || sum != (RecheckSummary{Checked: 2, Failed: 2}) || len(revoked) != 0 {
		t.Fatalf("round with the provider down: %+v, %v, revoked %v", sum, err, revoked)
	}
	if u, _ := h.st.GetUser(ctx, bob.ID); u.RefreshToken != before.RefreshToken || !u.IdPCheckedAt.Equal(before.IdPCheckedAt) {
		t.Fatalf("bob changed while the provider was down: %+v", u)
	}

	// A revoked account is reported once and its token forgotten.
	h.op.Revoke("sub-bob")
	sum, err = h.login.RecheckAll(ctx)
	revoked, reason := h.revokedUsers()
	if err != nil || sum != (RecheckSummary{Checked: 2, Revoked: 1}) || !slices.Equal(revoked, []store.UserID{bob.ID}) {
		t.Fatalf("round after the revocation: %+v, %v, revoked %v", sum, err, revoked)
	}
	if u, _ := h.st.GetUser(ctx, bob.ID); u.RefreshToken != "" || !strings.Contains(reason, "invalid_grant") {
		t.Fatalf("after the revocation: token kept %v, reason %q", u.RefreshToken != "", reason)
	}
	if sum, _ = h.login.RecheckAll(ctx); sum.Checked != 1 {
		t.Fatalf("next round checked %d users, want 1", sum.Checked)
	}

	// A user whose email domain is no longer allowed is revoked too.
	h.login.cfg.AllowedDomains = []string{"other.example"}
	h.mu.Lock()
	h.revoked = nil
	h.mu.Unlock()
	sum, _ = h.login.RecheckAll(ctx)
	revoked, reason = h.revokedUsers()
	if sum.Revoked != 1 || !slices.Equal(revoked, []store.UserID{ann.ID}) {
		t.Fatalf("round with ann's domain no longer allowed: %+v, revoked %v", sum, revoked)
	}
	if !strings.Contains(reason, "example.com may not sign in") {
		t.Fatalf("reason %q", reason)
	}
}

func TestNoRefreshTokenWithoutChecks(t *testing.T) {
	h := newHarness(t)
	if slices.Contains(h.login.oauth.Scopes, "offline_access") {
		t.Fatal("offline_access requested without RefreshChecks")
	}
	if u := h.loggedIn("ann"); u.RefreshToken != "" {
		t.Fatal("refresh token kept without RefreshChecks")
	}
}
