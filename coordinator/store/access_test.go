package store

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

// TestAccessRequests: access requests round-trip, filter, update, keep
// their IDs unique across deletion and reopen, and roll back with their
// transaction.
func TestAccessRequests(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, path := bk.openTest(t)
		ctx := context.Background()
		t0 := time.Unix(1800000000, 0).UTC()
		mk := func(node NodeID, user UserID, login, state string, created time.Time) AccessRequest {
			r, err := s.CreateAccessRequest(ctx, AccessRequest{NodeID: node, NodeName: "laptop", UserID: user, Login: login,
				Dst: "tag:prod-db:5432", Rule: "access[0]", Reason: "INC-4211", Requested: 2 * time.Hour, Duration: 2 * time.Hour,
				State: state, Created: created})
			must(t, err)
			return r
		}
		a := mk(1, 10, "ann@example.com", "pending", t0)
		b := mk(2, 11, "bob@example.com", "pending", t0.Add(time.Minute))
		c := mk(1, 10, "ann@example.com", "denied", t0.Add(2*time.Minute))
		if a.ID == 0 || b.ID <= a.ID || c.ID <= b.ID {
			t.Fatalf("IDs %d %d %d", a.ID, b.ID, c.ID)
		}
		got, err := s.GetAccessRequest(ctx, a.ID)
		must(t, err)
		if !reflect.DeepEqual(got, a) {
			t.Fatalf("got %+v, want %+v", got, a)
		}
		b.State, b.Approver, b.Duration, b.Decided, b.Expires = "active", "user:sre@example.com", time.Hour, t0.Add(3*time.Minute), t0.Add(time.Hour)
		must(t, s.UpdateAccessRequest(ctx, b))
		if got, _ := s.GetAccessRequest(ctx, b.ID); !reflect.DeepEqual(got, b) {
			t.Fatalf("after update %+v, want %+v", got, b)
		}
		ids := func(rs []AccessRequest) []int64 {
			var out []int64
			for _, r := range rs {
				out = append(out, r.ID)
			}
			return out
		}
		for _, tc := range []struct {
			name string
			f    AccessFilter
			want []int64
		}{
			{"all newest first", AccessFilter{}, []int64{c.ID, b.ID, a.ID}},
			{"pending", AccessFilter{States: []string{"pending"}}, []int64{a.ID}},
			{"pending or active", AccessFilter{States: []string{"pending", "active"}}, []int64{b.ID, a.ID}},
			{"by user", AccessFilter{User: 10}, []int64{c.ID, a.ID}},
			{"by login", AccessFilter{Login: "bob@example.com"}, []int64{b.ID}},
			{"by node", AccessFilter{Node: 2}, []int64{b.ID}},
			{"since", AccessFilter{Since: t0.Add(time.Minute)}, []int64{c.ID, b.ID}},
			{"expired by", AccessFilter{ExpiresBy: t0.Add(time.Hour)}, []int64{b.ID}},
			{"not expired yet", AccessFilter{ExpiresBy: t0.Add(time.Hour - 1)}, nil},
			{"limit", AccessFilter{Limit: 1}, []int64{c.ID}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				rs, err := s.ListAccessRequests(ctx, tc.f)
				must(t, err)
				if !reflect.DeepEqual(ids(rs), tc.want) {
					t.Fatalf("got %v, want %v", ids(rs), tc.want)
				}
			})
		}
		if next, err := s.NextAccessExpiry(ctx, "active"); err != nil || !next.Equal(b.Expires) {
			t.Fatalf("next expiry %v, %v; want %v", next, err, b.Expires)
		}
		if next, err := s.NextAccessExpiry(ctx, "expired"); err != nil || !next.IsZero() {
			t.Fatalf("next expiry of none %v, %v", next, err)
		}
		if _, err := s.GetAccessRequest(ctx, 999); !errors.Is(err, ErrNotFound) {
			t.Fatalf("get missing: %v", err)
		}
		if err := s.UpdateAccessRequest(ctx, AccessRequest{ID: 999, State: "denied"}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("update missing: %v", err)
		}
		// A rolled-back transaction keeps nothing.
		boom := errors.New("boom")
		err = s.Tx(ctx, func(q Queries) error {
			if _, err := q.CreateAccessRequest(ctx, AccessRequest{NodeID: 3, State: "pending", Created: t0}); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		// IDs are never reused, even after the newest row is gone and the
		// store reopened.
		must(t, s.Tx(ctx, func(q Queries) error {
			_, err := q.(queries).q.ExecContext(ctx, `DELETE FROM access_requests WHERE id = ?`, c.ID)
			return err
		}))
		must(t, s.Close())
		s2, err := OpenURL(ctx, path, Options{})
		must(t, err)
		defer s2.Close()
		d, err := s2.CreateAccessRequest(ctx, AccessRequest{NodeID: 3, State: "pending", Created: t0})
		must(t, err)
		if d.ID != c.ID+1 {
			t.Fatalf("new ID %d after %d was deleted (and %d rolled back)", d.ID, c.ID, c.ID+1)
		}
	})
}
