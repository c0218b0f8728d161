package store

import (
	"context"
	"testing"
	"time"
)

func TestPruneAudit(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, _ := bk.openTest(t)
		ctx := context.Background()
		base := time.Unix(1_700_000_000, 0)
		for i := range 10 {
			must(t, s.AppendAudit(ctx, AuditEvent{Time: base.Add(time.Duration(i) * time.Hour), Actor: "a", Action: "x", Outcome: "ok"}))
		}
		tests := []struct {
			before          time.Time
			pruned, remains int
		}{
			{base, 0, 10},                     // nothing older than the first
			{base.Add(3 * time.Hour), 3, 7},   // the first three
			{base.Add(3 * time.Hour), 0, 7},   // again: nothing left to prune
			{base.Add(100 * time.Hour), 7, 0}, // everything
		}
		for i, tt := range tests {
			n, err := s.PruneAudit(ctx, tt.before)
			must(t, err)
			left, err := s.ListAudit(ctx, AuditFilter{})
			must(t, err)
			if int(n) != tt.pruned || len(left) != tt.remains {
				t.Fatalf("step %d: pruned %d, %d left; want %d, %d", i, n, len(left), tt.pruned, tt.remains)
			}
			for _, e := range left {
				if e.Time.Before(tt.before) {
					t.Fatalf("step %d: event at %v survived pruning before %v", i, e.Time, tt.before)
				}
			}
		}
	})
}
