package oidc

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/login"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/tstest/testlog"
)

// gate is a dialer that refuses every connection while down, as a
// provider host that is not up does, and dials for real (to loopback)
// once up.
type gate struct{ up atomic.Bool }

func (g *gate) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if !g.up.Load() {
		return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("connection refused")}
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// TestStartsWhileProviderDown: the coordinator's login starts although the
// provider cannot be reached, refuses sign-ins meanwhile with a message
// saying so (a retryable answer), skips rechecks, and works once the
// provider answers — without a restart (issue 12, defect 6).
func TestStartsWhileProviderDown(t *testing.T) {
	g := &gate{}
	logs := &testlog.Buffer{}
	h := newHarness(t, func(c *Config) {
		tr := &http.Transport{DialContext: g.dial}
		t.Cleanup(tr.CloseIdleConnections)
		c.HTTPClient = &http.Client{Transport: tr, Timeout: 5 * time.Second}
		c.DiscoveryRetry = 5 * time.Millisecond
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	if !strings.Contains(logs.String(), "cannot be reached") || !strings.Contains(logs.String(), "connection refused") {
		t.Fatalf("log at start does not say the provider is unreachable and why:\n%s", logs)
	}
	_, err := h.login.Begin(context.Background(), key.NewMachine().Public(), "192.0.2.1:40000")
	if !errors.Is(err, login.ErrProviderUnavailable) || !strings.Contains(err.Error(), "unreachable; try again") {
		t.Fatalf("Begin while the provider is down: %v, want %v", err, login.ErrProviderUnavailable)
	}
	if _, err := h.login.RecheckAll(context.Background()); !errors.Is(err, login.ErrProviderUnavailable) {
		t.Fatalf("RecheckAll while the provider was never reached: %v, want it skipped", err)
	}

	g.up.Store(true)
	select {
	case <-h.login.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("the provider was not discovered within 10 s of coming up")
	}
	m, loginURL := h.begin()
	waited := h.waitAsync(m, loginURL)
	if status, page := newBrowser(t).Login(loginURL, "ann"); status != http.StatusOK || !strings.Contains(page, "Signed in as ann@example.com") {
		t.Fatalf("sign-in once the provider is up: %d %s", status, page)
	}
	if res := <-waited; res.err != nil {
		t.Fatalf("Wait: %v", res.err)
	}
}

// TestCloseEndsDiscovery: Close ends the background discovery of a
// provider that never comes up (goleak in TestMain checks the goroutine).
func TestCloseEndsDiscovery(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.HTTPClient = &http.Client{Transport: &http.Transport{DialContext: (&gate{}).dial}}
		c.DiscoveryRetry = time.Millisecond
	})
	h.login.Close()
	h.login.Close()
	select {
	case <-h.login.Ready():
		t.Fatal("ready without a provider")
	default:
	}
}

// TestGoogleOfflineAccess: for Google, which issues refresh tokens for
// access_type=offline rather than the offline_access scope, the
// authorization request carries access_type=offline and prompt=consent
// and not the scope; other providers get the scope.
func TestGoogleOfflineAccess(t *testing.T) {
	for _, tc := range []struct {
		name   string
		google bool
	}{{"google", true}, {"other provider", false}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.RefreshChecks = true })
			if tc.google {
				// The test provider stands in for Google (which cannot be
				// reached from a test): what is asked depends on the
				// issuer alone.
				h.login.oauth.Scopes, h.login.authOpts, _ = authRequest(googleIssuer, true, h.login.cfg.Scopes, nil)
			}
			_, loginURL := h.begin()
			c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := c.Get(loginURL)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			location := resp.Header.Get("Location")
			u, err := url.Parse(location)
			if err != nil || resp.StatusCode != http.StatusFound {
				t.Fatalf("start: %d %q %v", resp.StatusCode, location, err)
			}
			q := u.Query()
			offlineScope := strings.Contains(" "+q.Get("scope")+" ", " offline_access ")
			if tc.google != (q.Get("access_type") == "offline" && q.Get("prompt") == "consent") || tc.google == offlineScope {
				t.Fatalf("authorization request %s: access_type=%q prompt=%q scope=%q", location, q.Get("access_type"), q.Get("prompt"), q.Get("scope"))
			}
		})
	}
}
