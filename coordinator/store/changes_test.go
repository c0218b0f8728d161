package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestChangeFeed: every write other replicas must see appends one change
// naming its kind, entity and origin, in the write's own transaction (a
// rolled-back write leaves none).
func TestChangeFeed(t *testing.T) { forEachBackend(t, testChangeFeed) }

func testChangeFeed(t *testing.T, b backend) {
	s := b.reopen(t, b.newURL(t), Options{ReplicaID: "a"})
	ctx := context.Background()
	u, err := s.CreateUser(ctx, User{Name: "ann@example.com", Role: RoleMember})
	must(t, err)
	n, err := s.CreateNode(ctx, newNode("laptop", u.ID))
	must(t, err)
	cases := []struct {
		what  string
		write func() error
		kind  string
		ref   int64
	}{
		{"update user", func() error { u.Disabled = true; return s.UpdateUser(ctx, u) }, ChangeUser, int64(u.ID)},
		{"update node", func() error { _, err := s.UpdateNode(ctx, n); return err }, ChangeNode, int64(n.ID)},
		{"put attribute", func() error {
			return s.PutNodeAttr(ctx, NodeAttr{Node: n.ID, Name: "node:os", Value: "linux", Source: "node"})
		}, ChangeNode, int64(n.ID)},
		{"touch attributes", func() error { _, err := s.TouchNodeAttrs(ctx, n.ID, "node:", time.Now()); return err }, ChangeNode, int64(n.ID)},
		{"delete attribute", func() error { return s.DeleteNodeAttr(ctx, n.ID, "node:os") }, ChangeNode, int64(n.ID)},
		{"session", func() error { return s.SetSession(ctx, n.ID, true, time.Now()) }, ChangeNode, int64(n.ID)},
		{"policy", func() error { _, err := s.SavePolicy(ctx, PolicyVersion{Hash: "h", Source: "{}"}); return err }, ChangePolicy, 1},
		{"access request", func() error {
			_, err := s.CreateAccessRequest(ctx, AccessRequest{NodeID: n.ID, UserID: u.ID, Dst: "x", State: "pending"})
			return err
		}, ChangeAccess, 1},
		{"delete node", func() error { return s.DeleteNode(ctx, n.ID) }, ChangeNode, int64(n.ID)},
		{"delete user", func() error { return s.DeleteUser(ctx, u.ID) }, ChangeUser, int64(u.ID)},
	}
	_, last, err := s.LastChange(ctx)
	must(t, err)
	for _, c := range cases {
		must(t, c.write())
		cs, err := s.ListChanges(ctx, last, 0)
		must(t, err)
		if len(cs) != 1 || cs[0].Kind != c.kind || cs[0].Ref != c.ref || cs[0].Origin != "a" {
			t.Errorf("%s: changes %+v, want one %s %d from a", c.what, cs, c.kind, c.ref)
		}
		if len(cs) > 0 {
			last = cs[len(cs)-1].ID
		}
	}
	failed := errors.New("rolled back")
	err = s.Tx(ctx, func(q Queries) error {
		if _, err := q.CreateUser(ctx, User{Name: "bob@example.com", Role: RoleMember}); err != nil {
			return err
		}
		return failed
	})
	if !errors.Is(err, failed) {
		t.Fatal(err)
	}
	if cs, _ := s.ListChanges(ctx, last, 0); len(cs) != 0 {
		t.Errorf("a rolled-back write left changes %+v", cs)
	}
}

// TestPresenceAndLeases: a node's session on replica a counts for b while a
// beats, and stops counting once a is swept as dead (with a change for
// the node); a lease has one holder until it expires or is released.
func TestPresenceAndLeases(t *testing.T) { forEachBackend(t, testPresenceAndLeases) }

func testPresenceAndLeases(t *testing.T, be backend) {
	url := be.newURL(t)
	a, b := be.reopen(t, url, Options{ReplicaID: "a"}), be.reopen(t, url, Options{ReplicaID: "b"})
	ctx := context.Background()
	now := time.Now()
	must(t, a.Heartbeat(ctx, now))
	must(t, b.Heartbeat(ctx, now))
	n, err := a.CreateNode(ctx, newNode("laptop", 1))
	must(t, err)
	must(t, a.SetSession(ctx, n.ID, true, now))
	count := func(s Store, alive time.Time) int {
		c, err := s.RemoteSessions(ctx, n.ID, alive)
		must(t, err)
		return c
	}
	if got := count(b, now.Add(-time.Second)); got != 1 {
		t.Errorf("b sees %d remote sessions, want 1", got)
	}
	if got := count(a, now.Add(-time.Second)); got != 0 {
		t.Errorf("a sees %d remote sessions of its own node, want 0", got)
	}
	if live, err := b.LiveSessions(ctx, now.Add(-time.Second)); err != nil || len(live) != 1 || live[0] != n.ID {
		t.Errorf("b's live sessions %v, %v; want [%d]", live, err, n.ID)
	}
	if got := count(b, now.Add(time.Second)); got != 0 {
		t.Errorf("b counts a session of a replica that has not beaten since: %d", got)
	}
	_, last, err := b.LastChange(ctx)
	must(t, err)
	must(t, b.Heartbeat(ctx, now.Add(time.Minute)))
	swept, err := b.SweepReplicas(ctx, now.Add(time.Second))
	must(t, err)
	if len(swept) != 1 || swept[0] != n.ID {
		t.Errorf("swept %v, want [%d]", swept, n.ID)
	}
	if cs, _ := b.ListChanges(ctx, last, 0); len(cs) != 1 || cs[0].Ref != int64(n.ID) || cs[0].Origin != "b" {
		t.Errorf("sweep changes %+v, want one for node %d", cs, n.ID)
	}
	if got := count(b, time.Time{}); got != 0 {
		t.Errorf("a's session survived its sweep: %d", got)
	}

	lease := func(s Store, at time.Time) bool {
		ok, err := s.TryLease(ctx, "jobs", at, at.Add(10*time.Second))
		must(t, err)
		return ok
	}
	if !lease(a, now) || lease(b, now.Add(time.Second)) || !lease(a, now.Add(2*time.Second)) {
		t.Error("a did not take and renew the free lease, or b took it while a held it")
	}
	if !lease(b, now.Add(time.Minute)) {
		t.Error("b did not take the expired lease")
	}
	must(t, b.ReleaseLease(ctx, "jobs"))
	if !lease(a, now.Add(time.Minute)) {
		t.Error("a did not take the released lease")
	}
}

// TestNoFeedWithoutReplica: a store opened without a replica ID (one
// coordinator) keeps no change feed and no sessions, so nothing grows
// that no one prunes.
func TestNoFeedWithoutReplica(t *testing.T) { forEachBackend(t, testNoFeedWithoutReplica) }

func testNoFeedWithoutReplica(t *testing.T, b backend) {
	s, _ := b.openTest(t)
	ctx := context.Background()
	n, err := s.CreateNode(ctx, newNode("laptop", 1))
	must(t, err)
	must(t, s.SetSession(ctx, n.ID, true, time.Now()))
	if first, last, err := s.LastChange(ctx); err != nil || first != 0 || last != 0 {
		t.Errorf("changes %d..%d (%v), want none", first, last, err)
	}
	if live, err := s.LiveSessions(ctx, time.Time{}); err != nil || len(live) != 0 {
		t.Errorf("sessions %v (%v), want none", live, err)
	}
}
