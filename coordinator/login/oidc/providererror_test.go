package oidc

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/testlog"
)

// TestProviderErrorMessages: when the provider refuses the code exchange
// or cannot be reached, the log line, the audit event and the error the
// node gets name the OAuth error, its description and the HTTP status, or
// the network error, and say what to check — never as a Go map, never
// with "login failed" twice, never with the client secret (issue 12,
// defect 7).
func TestProviderErrorMessages(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(*Config, *gate)
		down  bool     // the provider is unreachable at the callback
		want  []string // in the log, the audit detail and the Wait error
		hint  string
	}{
		{name: "wrong client secret", setup: func(c *Config, _ *gate) { c.ClientSecret = "not-the-secret" },
			want: []string{"HTTP 401", "invalid_client", "invalid client_id / client_secret"}, hint: "client ID and secret"},
		{name: "provider unreachable at the exchange", setup: func(*Config, *gate) {}, down: true,
			want: []string{"could not be reached", "connection refused"}, hint: "can reach the provider's token endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &gate{}
			g.up.Store(true)
			logs := &testlog.Buffer{}
			h := newHarness(t, func(c *Config) {
				tr := &http.Transport{DialContext: g.dial, DisableKeepAlives: true}
				t.Cleanup(tr.CloseIdleConnections)
				c.HTTPClient = &http.Client{Transport: tr, Timeout: 5 * time.Second}
				c.Logger = slog.New(slog.NewTextHandler(logs, nil))
				tc.setup(c, g)
			})
			m, loginURL := h.begin()
			waited := h.waitAsync(m, loginURL)
			b := newBrowser(t)
			callback := b.SignIn(loginURL, "ann")
			if tc.down {
				g.up.Store(false)
			}
			status, page, _ := b.Get(callback)
			if status != http.StatusBadGateway {
				t.Fatalf("callback: %d %s", status, page)
			}
			res := <-waited
			if res.err == nil {
				t.Fatal("Wait succeeded")
			}
			// Nobody is identified before the exchange: the failure is
			// counted and sampled into the log, not stored.
			failures := h.failLog.String()
			for what, text := range map[string]string{"log": logs.String(), "failure log": failures, "Wait error": res.err.Error(), "page": page} {
				for _, w := range tc.want {
					if !strings.Contains(text, w) {
						t.Errorf("%s does not contain %q:\n%s", what, w, text)
					}
				}
				if strings.Contains(text, "map[") || strings.Contains(text, "not-the-secret") || strings.Contains(text, clientSecret) {
					t.Errorf("%s shows a Go map or a secret:\n%s", what, text)
				}
			}
			if !strings.Contains(logs.String(), tc.hint) {
				t.Errorf("the log does not say what to check (%q):\n%s", tc.hint, logs)
			}
			// The registry prefixes "login failed" when it hands this to
			// the node; the method must not say it too.
			if strings.Contains(res.err.Error(), "login failed") {
				t.Errorf("Wait error %q would read \"login failed: login failed: ...\"", res.err)
			}
		})
	}
}

// TestDescribeProviderError covers the classification on its own:
// timeouts and descriptions with control characters or of any length.
func TestDescribeProviderError(t *testing.T) {
	if pe := describeProviderError(context.DeadlineExceeded); pe.answered() || !strings.Contains(pe.String(), "timeout") {
		t.Errorf("timeout: %s", pe)
	}
	long := strings.Repeat("é", 300) + "\n\x1b[31m"
	if got := printable(long, 200); len(got) > 200+len("…") || strings.ContainsAny(got, "\n\x1b") || !strings.HasSuffix(got, "…") {
		t.Errorf("printable = %q", got)
	}
	if pe := describeProviderError(errors.New("oauth2: cannot fetch token: Post \"http://idp/token\": dial tcp: connection refused")); !strings.HasPrefix(pe.String(), "the identity provider could not be reached: Post") {
		t.Errorf("transport: %s", pe)
	}
}
