package store

import (
	"context"
	"testing"
	"time"
)

// TestAuditIDsNeverReused: an exporter's cursor is the last audit row it
// delivered, so a row appended after every older one was pruned must
// still get a higher ID than any row before it, or it would never be
// exported (and "audit-<id>" would name two events).
func TestAuditIDsNeverReused(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, _ := bk.openTest(t)
		ctx := context.Background()
		base := time.Unix(1_700_000_000, 0)
		for i := range 3 {
			must(t, s.AppendAudit(ctx, AuditEvent{Time: base.Add(time.Duration(i) * time.Second), Actor: "a", Action: "x", Outcome: "ok"}))
		}
		old, err := s.ListAuditAfter(ctx, 0, 10)
		must(t, err)
		if len(old) != 3 {
			t.Fatalf("%d events listed, want 3", len(old))
		}
		last := old[2].ID
		if _, err := s.PruneAudit(ctx, base.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		must(t, s.AppendAudit(ctx, AuditEvent{Time: base.Add(2 * time.Hour), Actor: "a", Action: "y", Outcome: "ok"}))
		got, err := s.ListAuditAfter(ctx, last, 10)
		must(t, err)
		if len(got) != 1 || got[0].ID <= last || got[0].Action != "y" {
			t.Fatalf("after pruning everything, events after %d: %+v; want the new one with a higher ID", last, got)
		}
	})
}

func TestListAuditAfter(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, _ := bk.openTest(t)
		ctx := context.Background()
		for i := range 10 {
			must(t, s.AppendAudit(ctx, AuditEvent{Time: time.Unix(int64(1000-i), 0), Actor: "a", Action: "x", Outcome: "ok"}))
		}
		all, err := s.ListAuditAfter(ctx, 0, 100)
		must(t, err)
		if len(all) != 10 {
			t.Fatalf("%d events, want 10", len(all))
		}
		for i := 1; i < len(all); i++ {
			if all[i].ID <= all[i-1].ID {
				t.Fatalf("not in ID order: %d after %d", all[i].ID, all[i-1].ID)
			}
		}
		tests := []struct {
			after int64
			n     int
			want  []int64
		}{
			{0, 3, []int64{all[0].ID, all[1].ID, all[2].ID}},
			{all[7].ID, 5, []int64{all[8].ID, all[9].ID}},
			{all[9].ID, 5, nil},
		}
		for _, tt := range tests {
			got, err := s.ListAuditAfter(ctx, tt.after, tt.n)
			must(t, err)
			var ids []int64
			for _, e := range got {
				ids = append(ids, e.ID)
			}
			if len(ids) != len(tt.want) {
				t.Fatalf("after %d n %d: %v, want %v", tt.after, tt.n, ids, tt.want)
			}
			for i := range ids {
				if ids[i] != tt.want[i] {
					t.Fatalf("after %d n %d: %v, want %v", tt.after, tt.n, ids, tt.want)
				}
			}
		}
	})
}

func TestSinkCursors(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, path := bk.openTest(t)
		ctx := context.Background()
		if c, err := s.SinkCursor(ctx, "file:a", "audit"); err != nil || c != 0 {
			t.Fatalf("new cursor = %d, %v; want 0", c, err)
		}
		must(t, s.SetSinkCursor(ctx, "file:a", "audit", 42))
		must(t, s.SetSinkCursor(ctx, "file:b", "audit", 7))
		must(t, s.SetSinkCursor(ctx, "file:a", "audit", 43))
		must(t, s.Close())
		s2, err := OpenURL(ctx, path, Options{})
		must(t, err)
		defer s2.Close()
		for sink, want := range map[string]int64{"file:a": 43, "file:b": 7, "file:c": 0} {
			if c, err := s2.SinkCursor(ctx, sink, "audit"); err != nil || c != want {
				t.Fatalf("cursor of %s after reopening = %d, %v; want %d", sink, c, err, want)
			}
		}
	})
}
