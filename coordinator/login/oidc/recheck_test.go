package oidc

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/tstest/testlog"
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

// TestRecheckKeepsNewestRefreshToken (issue 12, defect 1): the provider
// rotates refresh tokens at every sign-in and every refresh, as Dex does,
// so the coordinator must store the newest after each. A second sign-in
// that changes nothing else ends the first sign-in's token; the rechecks
// after it still get answers and the user stays enabled.
func TestRecheckKeepsNewestRefreshToken(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.RefreshChecks = true })
	ctx := context.Background()
	first := h.loggedIn("ann").RefreshToken
	second := h.loggedIn("ann") // the same claims: nothing but the token changes
	if second.RefreshToken == "" || second.RefreshToken == first {
		t.Fatalf("the second sign-in's refresh token was not stored (changed %v)", second.RefreshToken != first)
	}
	for round := 1; round <= 3; round++ {
		sum, err := h.login.RecheckAll(ctx)
		if err != nil || sum != (RecheckSummary{Checked: 1}) {
			t.Fatalf("round %d: %+v, %v; want the user checked and accepted", round, sum, err)
		}
		u, _ := h.st.GetUser(ctx, second.ID)
		if u.Disabled || u.RefreshToken == "" || u.RefreshToken == second.RefreshToken {
			t.Fatalf("round %d: disabled %v, the refreshed token stored %v", round, u.Disabled, u.RefreshToken != second.RefreshToken)
		}
		second = u
	}
}

// recheckAudits returns the stored login.oidc-recheck events with outcome.
func (h *harness) recheckAudits(outcome string) []store.AuditEvent {
	h.t.Helper()
	evs, err := h.st.ListAudit(context.Background(), store.AuditFilter{Action: "login.oidc-recheck"})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []store.AuditEvent
	for _, e := range evs {
		if e.Outcome == outcome {
			out = append(out, e)
		}
	}
	return out
}

// TestRecheckAnswers (issue 12, defect 2): a provider that answers with an
// OAuth error refuses the user, whatever the code: invalid_grant disables
// at once, any other refusal (Dex's invalid_request with HTTP 500 for a
// deleted user) after RecheckDisableAfter rounds in a row. A provider that
// does not answer (down, or slower than the client waits) changes nothing.
func TestRecheckAnswers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		after  int // RecheckDisableAfter (0: default)
		act    func(h *harness)
		rounds []RecheckSummary // ann's and bob's, round by round
		off    int              // the round after which ann is disabled (0: never)
		reason string
	}{
		{name: "session revoked", act: func(h *harness) { h.op.Revoke("sub-ann") },
			rounds: []RecheckSummary{{Checked: 2, Revoked: 1}, {Checked: 1}}, off: 1, reason: "invalid_grant"},
		{name: "user deleted (Dex: invalid_request, 500)", act: func(h *harness) { h.op.Delete("sub-ann") },
			rounds: []RecheckSummary{{Checked: 2, Refused: 1}, {Checked: 2, Revoked: 1}, {Checked: 1}}, off: 2,
			reason: "invalid_request (HTTP 500): user not found, 2 rechecks in a row"},
		{name: "user deleted, disable after 3", after: 3, act: func(h *harness) { h.op.Delete("sub-ann") },
			rounds: []RecheckSummary{{Checked: 2, Refused: 1}, {Checked: 2, Refused: 1}, {Checked: 2, Revoked: 1}}, off: 3,
			reason: "3 rechecks in a row"},
		{name: "user deleted, disable at once", after: 1, act: func(h *harness) { h.op.Delete("sub-ann") },
			rounds: []RecheckSummary{{Checked: 2, Revoked: 1}}, off: 1, reason: "invalid_request"},
		{name: "provider down", act: func(h *harness) { h.op.SetDown(true) },
			rounds: []RecheckSummary{{Checked: 2, Failed: 2}, {Checked: 2, Failed: 2}, {Checked: 2, Failed: 2}}},
		{name: "provider stalled", act: func(h *harness) {
			h.op.Stall(true)
			h.login.cfg.HTTPClient.Timeout = 250 * time.Millisecond // the stalled provider outlasts it
		},
			rounds: []RecheckSummary{{Checked: 2, Failed: 2}, {Checked: 2, Failed: 2}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) {
				c.RefreshChecks, c.RecheckDisableAfter = true, tc.after
			})
			ctx := context.Background()
			ann, bob := h.loggedIn("ann"), h.loggedIn("bob")
			tc.act(h)
			for i, want := range tc.rounds {
				sum, err := h.login.RecheckAll(ctx)
				if err != nil || sum != want {
					t.Fatalf("round %d: %+v, %v; want %+v", i+1, sum, err, want)
				}
				u, _ := h.st.GetUser(ctx, ann.ID)
				if off := tc.off > 0 && i+1 >= tc.off; u.Disabled != off {
					t.Fatalf("round %d: ann disabled %v, want %v", i+1, u.Disabled, off)
				}
			}
			if u, _ := h.st.GetUser(ctx, bob.ID); u.Disabled {
				t.Fatal("bob was disabled")
			}
			revoked, reason := h.revokedUsers()
			if tc.off == 0 {
				if len(revoked) != 0 {
					t.Fatalf("revoked %v without a refusal", revoked)
				}
				return
			}
			if !slices.Equal(revoked, []store.UserID{ann.ID}) || !strings.Contains(reason, tc.reason) {
				t.Fatalf("revoked %v, reason %q; want ann for %q", revoked, reason, tc.reason)
			}
			// Each refusal that did not decide is audited, denied, besides
			// the one that did.
			want := tc.after
			if want == 0 {
				want = DefaultRecheckDisableAfter
			}
			if n := len(h.recheckAudits("denied")); tc.reason != "invalid_grant" && n != want {
				t.Fatalf("%d denied login.oidc-recheck events, want %d", n, want)
			}
		})
	}
}

// TestRecheckAlertsWhenUnanswered: a user the provider has not answered
// about for longer than RecheckAlertAfter keeps access and is reported at
// every round (a warning), audited once; once the provider stops answering
// three checks in a row, the round asks no more.
func TestRecheckAlertsWhenUnanswered(t *testing.T) {
	logs := &testlog.Buffer{}
	h := newHarness(t, func(c *Config) {
		c.RefreshChecks, c.RecheckAlertAfter = true, time.Minute
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	ctx := context.Background()
	for _, name := range []string{"ann", "bob", "cat", "eve"} {
		h.loggedIn(name)
	}
	h.op.Stall(true)
	h.login.cfg.HTTPClient.Timeout = 250 * time.Millisecond // the stalled provider outlasts it
	before := h.op.Hits("/oauth/token")
	sum, err := h.login.RecheckAll(ctx)
	if err != nil || sum != (RecheckSummary{Checked: 4, Failed: 4}) {
		t.Fatalf("round within the bound: %+v, %v", sum, err)
	}
	if n := h.op.Hits("/oauth/token") - before; n != maxUnansweredInARow {
		t.Fatalf("the stalled provider was asked %d times in a round, want %d", n, maxUnansweredInARow)
	}
	if len(h.recheckAudits("error")) != 0 || strings.Contains(logs.String(), "alert bound") {
		t.Fatal("alerted within the bound")
	}
	h.op.Stall(false)
	h.op.SetDown(true)
	h.clock.Advance(2 * time.Minute)
	for round := 1; round <= 2; round++ {
		sum, err = h.login.RecheckAll(ctx)
		if err != nil || sum != (RecheckSummary{Checked: 4, Failed: 4, Overdue: 4}) {
			t.Fatalf("round %d past the bound: %+v, %v", round, sum, err)
		}
		if n := strings.Count(logs.String(), "longer than the alert bound"); n != 4*round {
			t.Fatalf("round %d: %d overdue warnings, want %d", round, n, 4*round)
		}
		if n := len(h.recheckAudits("error")); n != 4 {
			t.Fatalf("round %d: %d audited alerts, want one per user", round, n)
		}
	}
	users, _ := h.st.ListUsers(ctx)
	for _, u := range users {
		if u.Disabled || u.RefreshToken == "" {
			t.Fatalf("%s lost access while the provider was down", u.Name)
		}
	}
}
