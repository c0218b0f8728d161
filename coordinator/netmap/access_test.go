package netmap

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/policy"
	"github.com/warrenmesh/warren/internal/wire"
)

const accessTestPolicy = `{
	"tagOwners": {"tag:db": [], "tag:web": []},
	"acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:web:443"], "mfa": "15m"}],
	"access": [{"src": ["autogroup:member"], "dst": ["tag:db:5432"], "approvers": ["u30@example.com"], "maxDuration": "4h"}],
}`

// testClock is a clock tests move by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) Set(t time.Time)     { c.mu.Lock(); c.now = t; c.mu.Unlock() }
func (c *testClock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func hasRule(rules []wire.FilterRule, name string) bool {
	for _, r := range rules {
		if r.Rule == name {
			return true
		}
	}
	return false
}

// TestGrantReachesStreams follows a grant from SetGrant to its expiry
// under Run: the granted device and the database get fresh maps with
// each other as peers and the grant's filter rule; the requester's other
// device and unrelated nodes hear nothing; at Until both lose it.
func TestGrantReachesStreams(t *testing.T) {
	clock := &testClock{now: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}
	e := newEngine(t, Config{Now: clock.Now, Policy: mustPolicy(t, accessTestPolicy)})
	e.Upsert(testNode(1, 10))           // the requesting laptop
	e.Upsert(testNode(5, 10))           // the same user's phone
	e.Upsert(testNode(2, 30, "tag:db")) // the database
	e.Upsert(testNode(3, 20))           // someone else
	s1, _ := e.Subscribe(1)
	s2, _ := e.Subscribe(2)
	s3, _ := e.Subscribe(3)
	s5, _ := e.Subscribe(5)
	for _, s := range []*Stream{s1, s2, s3, s5} {
		next(t, s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.Run(ctx) }()
	defer func() { cancel(); <-done }()

	until := clock.Now().Add(2 * time.Hour)
	gr := policy.Grant{ID: "ar-1", Node: 1, Dst: "tag:db:5432", Rule: "access[0]", Until: until}
	if err := e.SetGrant(gr); err != nil {
		t.Fatal(err)
	}
	if d := next(t, s1); !slices.Equal(peerIDs(d.Peers), []wire.NodeID{2}) {
		t.Fatalf("granted laptop: peers %v", peerIDs(d.Peers))
	}
	d := next(t, s2)
	if !slices.Equal(peerIDs(d.Peers), []wire.NodeID{1}) || !hasRule(d.PacketFilter, "access[0]/ar-1") {
		t.Fatalf("database: peers %v filter %+v", peerIDs(d.Peers), d.PacketFilter)
	}
	nothingQueued(t, s3)
	nothingQueued(t, s5)
	if got := e.Grants(); len(got) != 1 || got[0] != gr {
		t.Fatalf("Grants = %+v", got)
	}
	if err := e.SetGrant(policy.Grant{ID: "ar-2", Node: 1, Dst: "tag:nope:1", Until: until}); !errors.Is(err, policy.ErrBadDestination) {
		t.Fatalf("bad destination: %v", err)
	}

	// Run withdraws it at Until.
	clock.Set(until)
	e.poke()
	if d := next(t, s2); hasRule(d.PacketFilter, "access[0]/ar-1") || len(d.Peers) != 0 {
		t.Fatalf("database after expiry: peers %v filter %+v", peerIDs(d.Peers), d.PacketFilter)
	}
	if d := next(t, s1); len(d.Peers) != 0 {
		t.Fatalf("laptop after expiry: peers %v", peerIDs(d.Peers))
	}
	if got := e.Grants(); len(got) != 0 {
		t.Fatalf("Grants after expiry = %+v", got)
	}

	// RemoveGrant ends one early.
	if err := e.SetGrant(policy.Grant{ID: "ar-3", Node: 3, Dst: "tag:db:5432", Rule: "access[0]", Until: until.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	next(t, s3)
	if d := next(t, s2); !hasRule(d.PacketFilter, "access[0]/ar-3") {
		t.Fatalf("database with ar-3: %+v", d.PacketFilter)
	}
	e.RemoveGrant("ar-3")
	if d := next(t, s2); hasRule(d.PacketFilter, "access[0]/ar-3") {
		t.Fatalf("database after RemoveGrant: %+v", d.PacketFilter)
	}
	next(t, s3)
	e.RemoveGrant("ar-3") // again: nothing
	nothingQueued(t, s2)
	nothingQueued(t, s5)
}

// TestMFADenialsReachTheNode checks that a node learns the rules it fails
// only because its user's MFA is stale, when that happens, and that they
// go when the user signs in again.
func TestMFADenialsReachTheNode(t *testing.T) {
	clock := &testClock{now: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}
	e := newEngine(t, Config{Now: clock.Now, Policy: mustPolicy(t, accessTestPolicy)})
	laptop := testNode(1, 10)
	laptop.MFAAt = clock.Now().Add(-10 * time.Minute)
	e.Upsert(laptop)
	e.Upsert(testNode(2, 30, "tag:web"))
	s1, _ := e.Subscribe(1)
	if f := next(t, s1); f.Posture != nil && len(f.Posture.MFA) != 0 {
		t.Fatalf("fresh MFA: %+v", f.Posture)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.Run(ctx) }()
	defer func() { cancel(); <-done }()

	clock.Add(6 * time.Minute)
	e.poke()
	want := []wire.MFADenial{{Destination: "tag:web:443", Rule: "acls[0]", MaxAge: 15 * time.Minute}}
	for {
		d := next(t, s1)
		if d.Posture != nil {
			if !slices.Equal(d.Posture.MFA, want) {
				t.Fatalf("stale MFA: %+v, want %+v", d.Posture.MFA, want)
			}
			break
		}
	}
	// Signing in again clears it.
	laptop.MFAAt = clock.Now()
	e.Upsert(laptop)
	for {
		d := next(t, s1)
		if d.Posture != nil || d.Full {
			if d.Posture != nil && len(d.Posture.MFA) != 0 {
				t.Fatalf("after sign-in: %+v", d.Posture)
			}
			break
		}
	}
}
