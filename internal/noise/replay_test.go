package noise

import (
	"sync"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/key"
)

func TestReplayGuard(t *testing.T) {
	const window = time.Minute
	k1, k2 := key.NewMachine().Public(), key.NewMachine().Public()
	now := fixedNow
	type check struct {
		k  key.MachinePublic
		ts time.Time
		ok bool
	}
	tests := []struct {
		name   string
		checks []check
	}{
		{"first handshake", []check{{k1, now, true}}},
		{"same timestamp twice", []check{{k1, now, true}, {k1, now, false}}},
		{"older after newer", []check{{k1, now, true}, {k1, now.Add(-time.Nanosecond), false}}},
		{"newer after older", []check{{k1, now, true}, {k1, now.Add(time.Nanosecond), true}}},
		{"machines are independent", []check{{k1, now, true}, {k2, now, true}, {k2, now, false}}},
		{"future beyond window", []check{{k1, now.Add(window + 1), false}}},
		{"past beyond window", []check{{k1, now.Add(-window - 1), false}}},
		{"window edges", []check{{k1, now.Add(-window), true}, {k2, now.Add(window), true}}},
		{"rejected replay does not move the mark", []check{{k1, now, true}, {k1, now.Add(-time.Second), false}, {k1, now.Add(time.Second), true}}},
		{"out-of-window does not move the mark", []check{{k1, now.Add(window + time.Second), false}, {k1, now, true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewReplayGuard(window)
			for i, c := range tt.checks {
				err := g.Check(c.k, c.ts, now)
				if c.ok && err != nil {
					t.Fatalf("check %d: %v, want accepted", i, err)
				}
				if !c.ok {
					mustErrorIs(t, err, ErrReplay)
				}
			}
		})
	}
}

func TestReplayGuardDefaultWindow(t *testing.T) {
	for _, w := range []time.Duration{0, -time.Second} {
		if got := NewReplayGuard(w).Window(); got != DefaultReplayWindow {
			t.Errorf("NewReplayGuard(%v).Window() = %v, want %v", w, got, DefaultReplayWindow)
		}
	}
	if got := NewReplayGuard(time.Second).Window(); got != time.Second {
		t.Errorf("NewReplayGuard(1s).Window() = %v", got)
	}
}

func TestReplayGuardPrunes(t *testing.T) {
	const window = time.Minute
	g := NewReplayGuard(window)
	now := fixedNow
	const n = 10000
	// n machines connect, one every few milliseconds, for much longer than
	// the window: the guard must keep only about a window's worth.
	step := 10 * window / n
	perWindow := int(window / step)
	maxLen := 0
	for i := range n {
		now = now.Add(step)
		var raw [key.Size]byte
		raw[0], raw[1] = byte(i), byte(i>>8)
		if err := g.Check(key.PublicFromRaw[key.MachineKind](raw), now, now); err != nil {
			t.Fatal(err)
		}
		maxLen = max(maxLen, g.size())
	}
	if maxLen > 2*perWindow+minPruneSize {
		t.Errorf("guard held up to %d machines, want at most about %d (one window)", maxLen, 2*perWindow)
	}

	// A pruned entry's replay still fails, on the window check.
	g = NewReplayGuard(window)
	k := key.NewMachine().Public()
	if err := g.Check(k, fixedNow, fixedNow); err != nil {
		t.Fatal(err)
	}
	later := fixedNow.Add(2 * window)
	if err := g.Check(key.NewMachine().Public(), later, later); err != nil { // prunes k
		t.Fatal(err)
	}
	if g.size() != 1 {
		t.Fatalf("guard holds %d machines after pruning, want 1", g.size())
	}
	mustErrorIs(t, g.Check(k, fixedNow, later), ErrReplay)
}

func TestReplayGuardConcurrent(t *testing.T) {
	g := NewReplayGuard(0)
	k := key.NewMachine().Public()
	// Many goroutines present the same handshake: exactly one wins.
	const n = 32
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if g.Check(k, fixedNow, fixedNow) == nil {
				mu.Lock()
				accepted++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if accepted != 1 {
		t.Errorf("%d of %d identical handshakes accepted, want 1", accepted, n)
	}
}
