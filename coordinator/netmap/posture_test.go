package netmap

import (
	"slices"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// posturePolicy gates tag:db on an encrypted disk; users reach their own
// devices without conditions.
const posturePolicy = `{
	"tagOwners": {"tag:db": [], "tag:web": []},
	"postures": {"posture:managed": ["node:diskEncrypted == true"]},
	"acls": [
		{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:db:5432"], "srcPosture": ["posture:managed"]},
		{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]},
	],
}`

var deniedDisk = wire.PostureDenial{Destination: "tag:db:5432", Posture: "posture:managed", Reason: "node:diskEncrypted is false (needs == true)"}

func withDisk(n Node, encrypted string) Node {
	n.Attrs = map[string]string{"node:diskEncrypted": encrypted}
	n.PostureAttrs = []wire.PostureAttr{{Name: "node:diskEncrypted", Value: encrypted, Source: "node", CollectedAt: time.Unix(100, 0).UTC()}}
	return n
}

// TestPostureDenialsReachTheNode follows one laptop through a posture
// failure and its fix: the full map names the denial and the attributes
// held, fixing the attribute sends a delta without the denial (and the
// database as a peer), and other nodes hear only what concerns them.
func TestPostureDenialsReachTheNode(t *testing.T) {
	e := newEngine(t, Config{Policy: mustPolicy(t, posturePolicy)})
	laptop := withDisk(testNode(1, 10), "false")
	e.Upsert(laptop)
	e.Upsert(testNode(2, 20)) // another user's device: hears nothing of the laptop
	e.Upsert(testNode(3, 30, "tag:db"))
	e.Upsert(testNode(5, 10)) // the laptop owner's phone: a peer throughout
	s1, _ := e.Subscribe(1)
	s2, _ := e.Subscribe(2)
	s3, _ := e.Subscribe(3)
	s5, _ := e.Subscribe(5)
	next(t, s5)
	full := next(t, s1)
	if full.Posture == nil || !slices.Equal(full.Posture.Denials, []wire.PostureDenial{deniedDisk}) {
		t.Fatalf("full map posture = %+v, want the denial", full.Posture)
	}
	if !slices.Equal(full.Posture.Attrs, laptop.PostureAttrs) {
		t.Fatalf("full map attrs = %+v", full.Posture.Attrs)
	}
	if !slices.Equal(peerIDs(full.Peers), []wire.NodeID{5}) {
		t.Fatalf("denied laptop sees %v, want its phone only", peerIDs(full.Peers))
	}
	f2 := next(t, s2)
	notReported := wire.PostureDenial{Destination: "tag:db:5432", Posture: "posture:managed", Reason: "node:diskEncrypted is not reported"}
	if f2.Posture == nil || len(f2.Posture.Attrs) != 0 || !slices.Equal(f2.Posture.Denials, []wire.PostureDenial{notReported}) {
		t.Fatalf("node 2 (nothing reported) posture = %+v", f2.Posture)
	}
	next(t, s3)

	// Another device's report does not concern the laptop.
	e.Upsert(withDisk(testNode(4, 40), "true"))
	nothingQueued(t, s1)
	if d := next(t, s3); !slices.Equal(peerIDs(d.PeersChanged), []wire.NodeID{4}) {
		t.Fatalf("db when 4 joined: %+v", d)
	}

	// The laptop fixes its disk: the denial goes, the database appears.
	e.Upsert(withDisk(laptop, "true"))
	d := next(t, s1)
	if d.Full {
		// The node's policy view changed: a full map is what it gets.
		if d.Posture == nil || len(d.Posture.Denials) != 0 || !slices.Equal(peerIDs(d.Peers), []wire.NodeID{3, 5}) {
			t.Fatalf("after the fix: %+v", d)
		}
	} else if d.Posture == nil || len(d.Posture.Denials) != 0 {
		t.Fatalf("after the fix: posture %+v", d.Posture)
	}
	if d.Posture.Attrs[0].Value != "true" {
		t.Fatalf("after the fix: attrs %+v", d.Posture.Attrs)
	}
	nothingQueued(t, s2)
	// The laptop's record names the postures it passes: its phone hears
	// that it now passes posture:managed.
	if d := next(t, s5); len(d.PeersChanged) != 1 || !slices.Equal(d.PeersChanged[0].Postures, []string{"posture:managed"}) {
		t.Fatalf("phone after the fix: %+v", d)
	}
	if d := next(t, s3); !slices.Equal(peerIDs(d.PeersChanged), []wire.NodeID{1}) || d.Posture != nil {
		t.Fatalf("db after the fix: %+v", d)
	}

	// A new report time alone (a heartbeat the store recorded) tells the
	// laptop, and only it, the new time.
	again := withDisk(laptop, "true")
	again.PostureAttrs[0].CollectedAt = time.Unix(400, 0).UTC()
	e.Upsert(again)
	d = next(t, s1)
	if d.Full || d.Posture == nil || !d.Posture.Attrs[0].CollectedAt.Equal(time.Unix(400, 0)) {
		t.Fatalf("heartbeat: %+v", d)
	}
	nothingQueued(t, s2)
	nothingQueued(t, s3)

	// The same state again says nothing to anyone.
	e.Upsert(again)
	nothingQueued(t, s1)
	nothingQueued(t, s2)
	nothingQueued(t, s3)
}

// TestPostureDenialsFollowPolicyAndDestinations checks the changes that
// are not the node's own: the protected service appearing and going, and
// a policy that drops the posture.
func TestPostureDenialsFollowPolicyAndDestinations(t *testing.T) {
	e := newEngine(t, Config{Policy: mustPolicy(t, posturePolicy)})
	e.Upsert(withDisk(testNode(1, 10), "false"))
	s1, _ := e.Subscribe(1)
	if f := next(t, s1); f.Posture == nil || len(f.Posture.Denials) != 0 {
		t.Fatalf("no tag:db node yet: posture %+v", f.Posture)
	}
	e.Upsert(testNode(3, 30, "tag:db"))
	d := next(t, s1)
	if d.Posture == nil || !slices.Equal(d.Posture.Denials, []wire.PostureDenial{deniedDisk}) {
		t.Fatalf("db joined: %+v", d)
	}
	e.Remove(3, nil)
	if d := next(t, s1); d.Posture == nil || len(d.Posture.Denials) != 0 {
		t.Fatalf("db left: %+v", d)
	}
	e.Upsert(testNode(3, 30, "tag:db"))
	next(t, s1)
	e.SetPolicy(mustPolicy(t, `{"tagOwners": {"tag:db": []}, "acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:db:5432"]}]}`))
	d = next(t, s1)
	if d.Posture == nil || len(d.Posture.Denials) != 0 {
		t.Fatalf("posture dropped from the policy: %+v", d)
	}
}
