package netmap

import (
	"slices"
	"testing"

	"github.com/warrenmesh/warren/internal/wire"
)

// TestSelfPosture: the attributes held for a node reach the node itself
// in its full map and, when they change, in a delta (also when they become
// none); peers never see them nor hear of the change, and a node with none
// gets no posture in its full map.
func TestSelfPosture(t *testing.T) {
	e := newEngine(t, Config{Policy: mustPolicy(t, `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}`)})
	held := []wire.PostureAttr{{Name: "node:os", Value: "linux", Source: "node"}}
	n1 := testNode(1, 10)
	n1.PostureAttrs = held
	e.Upsert(n1)
	e.Upsert(testNode(2, 10))
	s1, _ := e.Subscribe(1)
	s2, _ := e.Subscribe(2)
	full := next(t, s1)
	if full.Posture == nil || !slices.Equal(full.Posture.Attrs, held) {
		t.Fatalf("node 1's full map posture = %+v; want %+v", full.Posture, held)
	}
	if f2 := next(t, s2); f2.Posture != nil {
		t.Fatalf("node 2 (nothing held) got posture %+v", f2.Posture)
	}

	// A changed value the policy does not read: a self delta with it, and
	// a peer record without it.
	held2 := []wire.PostureAttr{{Name: "node:os", Value: "linux", Source: "node", Stale: true}}
	n1.PostureAttrs = held2
	e.Upsert(n1)
	d := next(t, s1)
	if d.Full || d.Posture == nil || !slices.Equal(d.Posture.Attrs, held2) {
		t.Fatalf("node 1's delta = %+v; want its new posture", d)
	}
	nothingQueued(t, s2) // the record peers see did not change
	// None held any more: an empty status, not nil (nil means unchanged).
	n1.PostureAttrs = nil
	e.Upsert(n1)
	if d := next(t, s1); d.Posture == nil || len(d.Posture.Attrs) != 0 {
		t.Fatalf("node 1's delta after clearing = %+v", d.Posture)
	}
	nothingQueued(t, s2)
	// The same again: nothing for anyone.
	e.Upsert(n1)
	nothingQueued(t, s1)
	nothingQueued(t, s2)
}
