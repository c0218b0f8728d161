package registry

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/coordinator/login"
	"github.com/warrenmesh/warren/coordinator/login/local"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/wire"
)

// withLocalLogin gives the harness's registry interactive local login.
func (h *harness) withLocalLogin(maxPerSource int) {
	h.t.Helper()
	l, err := local.New(local.Config{Store: h.st, Users: h.r, Audit: h.r.audit, Now: h.clock.Now,
		BaseURL: "https://warren.example.com", MaxPerSource: maxPerSource})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { l.Close() })
	h.r.login = l
}

// beginLogin registers a new machine without a key from remote.
func (h *harness) beginLogin(remote string) error {
	_, err := h.r.Register(context.Background(), key.NewMachine().Public(), &wire.RegisterRequest{NodeKey: key.NewNode().Public(),
		DiscoKey: key.NewDisco().Public(), Hostname: "laptop"}, remote)
	return err
}

// One address cannot use up everybody's sign-ins: its logins are bounded,
// with an error that says to come back later, while other addresses still
// begin theirs (issue 11, defect 7).
func TestSignInsBoundedPerSource(t *testing.T) {
	h := newHarness(t, 0)
	h.withLocalLogin(3)
	var lr *LoginRequired
	for i := range 3 {
		if err := h.beginLogin("203.0.113.9:40000"); !errors.As(err, &lr) {
			t.Fatalf("login %d: %v", i, err)
		}
	}
	err := h.beginLogin("203.0.113.9:40001")
	if !errors.Is(err, login.ErrTooManyLogins) || !strings.Contains(err.Error(), "this network address") {
		t.Fatalf("fourth login from one address: %v", err)
	}
	if !isClientError(err) {
		t.Fatal("a full sign-in table is reported as the coordinator's failure")
	}
	if err := h.beginLogin("198.51.100.20:40000"); !errors.As(err, &lr) {
		t.Fatalf("login from another address: %v", err)
	}
	// An unknown machine without a key is nobody yet: counted, not stored.
	if n := h.auditCount("node.register", "denied"); n != 0 {
		t.Fatalf("%d denied registrations of an unknown machine stored, want 0", n)
	}
	if n := h.r.failures.Counts()["node.register"]; n != 1 {
		t.Fatalf("%d refused registrations counted, want 1", n)
	}
}

// A refusal about a refresh token the store no longer holds says nothing
// about the user: a recheck that used the token of one sign-in while the
// user signed in again (a second device; providers may invalidate the
// older token when they issue the newer one) must not disable them.
// Before, the user was disabled in the middle of signing in the second
// device (testmesh TestIdPOffboardingByTheLoop failed so under load).
func TestRecheckRefusalOfAReplacedToken(t *testing.T) {
	h := newHarness(t, 0)
	ctx := context.Background()
	id := login.Identity{Method: login.MethodOIDC, Issuer: "https://idp.example.com", Subject: "sub-ann",
		Email: "ann@example.com", RefreshToken: "refresh-1"}
	first, err := h.r.SignIn(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	id.RefreshToken = "refresh-2" // the second device's sign-in
	if _, err := h.r.SignIn(ctx, id); err != nil {
		t.Fatal(err)
	}
	// The recheck read the user before the second sign-in, and the
	// provider refused its token.
	if _, err := h.r.ApplyRecheck(ctx, first, login.Recheck{Revoked: true, Reason: "invalid_grant"}); err != nil {
		t.Fatal(err)
	}
	u, err := h.st.GetUser(ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if u.Disabled || u.RefreshToken != "refresh-2" {
		t.Fatalf("after a refusal of the replaced token: disabled %v, refresh token %q; want enabled with refresh-2", u.Disabled, u.RefreshToken)
	}
	// A refusal of the token it holds still disables the user.
	if _, err := h.r.ApplyRecheck(ctx, u, login.Recheck{Revoked: true, Reason: "invalid_grant"}); err != nil {
		t.Fatal(err)
	}
	if u, _ = h.st.GetUser(ctx, first.ID); !u.Disabled {
		t.Fatal("a refusal of the current token did not disable the user")
	}
}
