package coordinator_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/store"
)

// Audit events older than AuditRetention are pruned when the coordinator
// starts (and hourly after); newer ones stay. Zero keeps everything.
func TestAuditRetention(t *testing.T) {
	tests := []struct {
		name      string
		retention time.Duration
		wantOld   bool
	}{
		{"pruned", 30 * 24 * time.Hour, false},
		{"kept forever", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ctx := context.Background()
			st, err := store.Open(ctx, filepath.Join(dir, "warren.db"), nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range []store.AuditEvent{
				{Time: time.Now().Add(-400 * 24 * time.Hour), Actor: "old", Action: "test.old", Outcome: "ok"},
				{Time: time.Now().Add(-time.Hour), Actor: "new", Action: "test.new", Outcome: "ok"},
			} {
				if err := st.AppendAudit(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
			st.Close()
			s := serve(t, coordinator.Config{StateDir: dir, AuditRetention: tt.retention})
			for action, want := range map[string]bool{"test.old": tt.wantOld, "test.new": true} {
				ev, err := s.c.Store().ListAudit(ctx, store.AuditFilter{Action: action})
				if err != nil {
					t.Fatal(err)
				}
				if (len(ev) == 1) != want {
					t.Fatalf("%s: %d events, want present=%v", action, len(ev), want)
				}
			}
		})
	}
}
