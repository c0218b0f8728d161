package netmap

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/key"
)

// TestOnRevoke: every change that ends a node key's activity reports
// that key once; changes that leave it active report nothing.
func TestOnRevoke(t *testing.T) {
	tests := []struct {
		name   string
		change func(e *Engine, n Node) Node // returns the node as changed
		old    bool                         // the old key is revoked (else the node's current key)
		none   bool                         // nothing is revoked
	}{
		{"removed", func(e *Engine, n Node) Node { e.Remove(n.ID(), nil); return n }, false, false},
		{"user disabled", func(e *Engine, n Node) Node { n.Disabled = true; e.Upsert(n); return n }, false, false},
		{"unauthorized", func(e *Engine, n Node) Node { n.Authorized = false; e.Upsert(n); return n }, false, false},
		{"key expired by an admin", func(e *Engine, n Node) Node {
			n.Wire.KeyExpiry = time.Unix(1, 0)
			e.Upsert(n)
			return n
		}, false, false},
		{"re-keyed", func(e *Engine, n Node) Node { n.Wire.NodeKey = key.NewNode().Public(); e.Upsert(n); return n }, true, false},
		{"renamed", func(e *Engine, n Node) Node { n.Wire.Name = "other"; e.Upsert(n); return n }, false, true},
		{"endpoints", func(e *Engine, n Node) Node {
			_ = e.SetEndpoints(n.ID(), nil, 900)
			return n
		}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var got []key.NodePublic
			e := newEngine(t, Config{OnRevoke: func(k key.NodePublic) { mu.Lock(); got = append(got, k); mu.Unlock() }})
			n := testNode(1, 10)
			e.Upsert(n)
			e.Upsert(testNode(2, 10))
			changed := tt.change(e, n)
			var want []key.NodePublic
			switch {
			case tt.none:
			case tt.old:
				want = []key.NodePublic{n.Wire.NodeKey}
			default:
				want = []key.NodePublic{changed.Wire.NodeKey}
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(got, want) {
				t.Errorf("revoked %v, want %v", got, want)
			}
		})
	}
}

// TestOnRevokeKeyExpiry: a key expiring on the clock is revoked when the
// engine's Run applies it.
func TestOnRevokeKeyExpiry(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	revoked := make(chan key.NodePublic, 1)
	e := newEngine(t, Config{Now: clock, OnRevoke: func(k key.NodePublic) { revoked <- k }})
	n := testNode(1, 10)
	n.Wire.KeyExpiry = time.Unix(1010, 0)
	e.Upsert(n)
	mu.Lock()
	now = time.Unix(1011, 0)
	mu.Unlock()
	e.mu.Lock()
	e.expireDue(clock())
	e.mu.Unlock()
	select {
	case k := <-revoked:
		if k != n.Wire.NodeKey {
			t.Fatalf("revoked %v, want %v", k, n.Wire.NodeKey)
		}
	default:
		t.Fatal("expiry revoked nothing")
	}
}
