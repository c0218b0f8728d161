package coordinator_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/login/oidc"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/tstest/consoletest"
	"github.com/warrenmesh/warren/internal/tstest/oidctest"
)

// consoleIdP serves a coordinator whose sign-in is an in-process OpenID
// Provider (and, with local, the choice of it and local accounts).
func consoleIdP(t *testing.T, local bool, users ...oidctest.User) *served {
	t.Helper()
	return serveAt(t, coordinator.Config{ConsoleInsecureCookies: true}, func(url string, cfg *coordinator.Config) {
		op := oidctest.New(t, oidctest.Config{Users: users, Clients: []oidctest.Client{{
			ID: "warren", Secret: "s3cret", RedirectURL: url + oidc.CallbackPath}}})
		cfg.Login = coordinator.LoginConfig{PublicURL: url, Local: local,
			OIDC: &coordinator.OIDCConfig{Issuer: op.Issuer(), ClientID: "warren", ClientSecret: "s3cret"}}
	})
}

// TestConsoleSignInOIDC signs a member in through the OpenID Provider,
// alone and offered next to local accounts, and checks the sign-in was
// audited as a console sign-in.
func TestConsoleSignInOIDC(t *testing.T) {
	for _, local := range []bool{false, true} {
		name := "oidc"
		if local {
			name = "choice"
		}
		t.Run(name, func(t *testing.T) {
			s := consoleIdP(t, local, oidctest.User{Subject: "sub-mia", Username: "mia", Email: "mia@example.com", EmailVerified: true})
			b := consoletest.NewBrowser(s.url)
			if err := b.SignInOIDC(t, "mia"); err != nil {
				t.Fatal(err)
			}
			resp, body := b.Get(t, "/admin/")
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, "mia@example.com") {
				t.Fatalf("home: %d %.300s", resp.StatusCode, body)
			}
			evs, err := s.c.Store().ListAudit(context.Background(), store.AuditFilter{Action: "login.oidc", Target: "console"})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 || !strings.Contains(evs[0].Detail, `"console":true`) {
				t.Fatalf("audit of the sign-in: %+v", evs)
			}
		})
	}
}
