package coordinator_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/coordinator"
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
