package coordinator_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/tstest/consoletest"
)

// TestConsoleNeedsASession checks the console's floor: without a session
// a page redirects to the sign-in page and a form post is refused, both
// with the console's security headers, and neither says anything else.
func TestConsoleNeedsASession(t *testing.T) {
	s := serve(t, coordinator.Config{})
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	resp, err := client.Get(s.url + "/admin/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/admin/login") {
		t.Fatalf("GET /admin/ without a session: %d %q, want 303 to /admin/login", resp.StatusCode, resp.Header.Get("Location"))
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Fatalf("Content-Security-Policy %q", csp)
	}

	resp, err = client.PostForm(s.url+"/admin/", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST without a session: %d, want 401 or 405", resp.StatusCode)
	}
	if len(body) > 64 {
		t.Fatalf("POST without a session answered %d bytes: %q", len(body), body)
	}
}

// consoleServe is a coordinator with local sign-in and cookies Go's jar
// keeps over plain HTTP.
func consoleServe(t *testing.T, cfg coordinator.Config) *served {
	t.Helper()
	cfg.Login.Local = true
	cfg.ConsoleInsecureCookies = true
	return serve(t, cfg)
}

// TestConsoleSignInLocal signs an admin (password + TOTP) and a member
// (password only) in through the console's page and the local method's
// form, and checks the session works, that the sign-in was audited as a
// console sign-in, and that signing out ends it.
func TestConsoleSignInLocal(t *testing.T) {
	s := consoleServe(t, coordinator.Config{})
	reg := s.c.Registry()
	for _, tc := range []struct {
		name string
		role store.Role
		totp bool
	}{
		{"root@example.com", store.RoleAdmin, true},
		{"bob@example.com", store.RoleMember, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := consoletest.NewUser(t, reg, tc.name, tc.role, tc.totp)
			b := consoletest.SignIn(t, s.url, u)
			resp, body := b.Get(t, "/admin/")
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, tc.name) {
				t.Fatalf("home: %d %.200s", resp.StatusCode, body)
			}
			evs, err := s.c.Store().ListAudit(context.Background(), store.AuditFilter{Action: "login.local", Actor: "user:" + tc.name})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 || evs[0].Target != "console" || !strings.Contains(evs[0].Detail, `"console":true`) || evs[0].Outcome != audit.OK {
				t.Fatalf("audit of the sign-in: %+v", evs)
			}
			resp, _ = b.Post(t, "/admin/logout", nil)
			if resp.Request.URL.Path != "/admin/login" {
				t.Fatalf("sign-out landed at %s", resp.Request.URL)
			}
			resp, _ = b.Get(t, "/admin/")
			if resp.Request.URL.Path != "/admin/login" {
				t.Fatalf("after sign-out /admin/ answered %d at %s", resp.StatusCode, resp.Request.URL)
			}
		})
	}
}
