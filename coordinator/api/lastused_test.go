package api

import (
	"context"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/testclock"
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
