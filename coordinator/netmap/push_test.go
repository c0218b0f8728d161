package netmap

import (
	"sync"
	"testing"
	"time"
)

// TestOnPush: every response a stream hands out is reported once, full
// maps as full, and Streams counts the open streams.
func TestOnPush(t *testing.T) {
	var mu sync.Mutex
	var got []bool
	e := newEngine(t, Config{OnPush: func(full bool, waited time.Duration) {
		if waited < 0 {
			t.Errorf("waited %v", waited)
		}
		mu.Lock()
		got = append(got, full)
		mu.Unlock()
	}})
	e.Upsert(testNode(1, 10))
	e.Upsert(testNode(2, 10))
	if n := e.Streams(); n != 0 {
		t.Fatalf("Streams before any subscription = %d", n)
	}
	s1, _ := e.Subscribe(1)
	s2, _ := e.Subscribe(2)
	if n := e.Streams(); n != 2 {
		t.Fatalf("Streams = %d, want 2", n)
	}
	next(t, s1)
	e.Upsert(testNode(3, 10))
	next(t, s1)
	s2.Close()
	if n := e.Streams(); n != 1 {
		t.Fatalf("Streams after a Close = %d, want 1", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || !got[0] || got[1] {
		t.Fatalf("pushes reported %v, want [true false]", got)
	}
}
