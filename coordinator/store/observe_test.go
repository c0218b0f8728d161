package store

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestObserve: with Options.Observe, reads, writes and transactions are
// each reported under their op.
func TestObserve(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		var mu sync.Mutex
		seen := map[string]int{}
		ctx := context.Background()
		s, err := OpenURL(ctx, bk.newURL(t), Options{Observe: func(op string, d time.Duration) {
			if d < 0 {
				t.Errorf("%s took %v", op, d)
			}
			mu.Lock()
			seen[op]++
			mu.Unlock()
		}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		mu.Lock()
		clear(seen) // the migrations
		mu.Unlock()
		u, err := s.CreateUser(ctx, User{Name: "ann@example.com", Role: RoleAdmin})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetUser(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		// A single-statement write outside a transaction (AppendAudit is a
		// transaction: it takes its ID from high_water).
		if err := s.SetSinkCursor(ctx, "siem", "audit", 7); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, op := range []string{"tx", "read", "write"} {
			if seen[op] == 0 {
				t.Errorf("no %q observed; saw %v", op, seen)
			}
		}
	})
}
