package api

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/tstest/testclock"
)

// An API key's LastUsed is written at most once a minute, however many
// requests use it.
func TestLastUsedWrittenOncePerMinute(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	clock := testclock.New(start)
	h := newHarnessWith(t, func(c *Config) { c.Now = clock.Now })
	_, client, _ := h.user("admin@example.com", store.RoleAdmin)
	ctx := context.Background()
	lastUsed := func() time.Time {
		t.Helper()
		keys, err := h.st.ListAPIKeys(ctx)
		if err != nil || len(keys) != 1 {
			t.Fatalf("api keys: %v, %v", keys, err)
		}
		return keys[0].LastUsed
	}
	steps := []struct {
		advance time.Duration
		want    time.Time
	}{
		{0, start},                                 // first use: written
		{30 * time.Second, start},                  // within the minute: not written
		{29 * time.Second, start},                  // still within
		{time.Second, start.Add(time.Minute)},      // a minute on: written
		{59 * time.Second, start.Add(time.Minute)}, // within the next minute
	}
	for i, st := range steps {
		clock.Advance(st.advance)
		for range 3 {
			if _, err := client.ListNodes(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if got := lastUsed(); !got.Equal(st.want) {
			t.Fatalf("step %d: LastUsed %v, want %v", i, got, st.want)
		}
	}
}

// Failed authentications are counted, never audited, and admins can read
// the counts.
func TestFailuresCountedNotAudited(t *testing.T) {
	h := newHarness(t)
	_, asAdmin, _ := h.user("admin@example.com", store.RoleAdmin)
	_, asMember, _ := h.user("member@example.com", store.RoleMember)
	ctx := context.Background()
	bogus := NewRemoteClient(h.srv.URL, "wak_abcdefghijklmnopqrstuvwxyz234567", h.srv.Client())
	for range 5 {
		if _, err := bogus.ListNodes(ctx); err == nil {
			t.Fatal("an unknown key was let in")
		}
	}
	get := func(c *Client) (FailuresResponse, int) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, h.srv.URL+FailuresPath, nil)
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
		resp, err := h.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var fr FailuresResponse
		_ = json.NewDecoder(resp.Body).Decode(&fr)
		return fr, resp.StatusCode
	}
	if _, code := get(asMember); code != http.StatusForbidden {
		t.Fatalf("member reading failure counts: %d", code)
	}
	fr, code := get(asAdmin)
	if code != http.StatusOK || fr.Failures["api.auth"] != 5 {
		t.Fatalf("admin reading failure counts: %d %+v, want 5 api.auth", code, fr)
	}
	events, err := h.st.ListAudit(ctx, store.AuditFilter{Action: "api.auth"})
	if err != nil || len(events) != 0 {
		t.Fatalf("failed authentications audited: %v, %v", events, err)
	}
}
