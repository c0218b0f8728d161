package local

import (
	"fmt"
	"testing"
	"time"
)

func TestAttemptLimiter(t *testing.T) {
	t0 := time.Unix(1_780_000_000, 0)
	ann := pairOf("ann", "198.51.100.7:5000")
	type step struct {
		at     time.Duration
		o      outcome // outcome of a reserved attempt; ignored when refused
		wantOK bool
	}
	fails := func(n int) []step {
		var s []step
		for i := range n {
			s = append(s, step{time.Duration(i) * time.Second, failed, true})
		}
		return s
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"four failures leave the pair free", append(fails(4), step{5 * time.Second, neutral, true})},
		{"the fifth failure locks the pair out", append(fails(5), step{5 * time.Second, neutral, false})},
		{"the lockout ends after LockoutBase", append(fails(5),
			step{4*time.Second + LockoutBase - 1, neutral, false}, step{4*time.Second + LockoutBase, neutral, true})},
		{"each further failure doubles the lockout", append(fails(5),
			step{4*time.Second + LockoutBase, failed, true},
			step{4*time.Second + LockoutBase + 2*LockoutBase - 1, neutral, false},
			step{4*time.Second + 3*LockoutBase, neutral, true})},
		{"a success forgets the failures", append(fails(4), step{5 * time.Second, succeeded, true},
			step{6 * time.Second, failed, true}, step{7 * time.Second, failed, true}, step{8 * time.Second, neutral, true})},
		{"a quiet pair is forgotten", append(fails(5), step{4*time.Second + FailureMemory, failed, true},
			step{4*time.Second + FailureMemory + time.Second, neutral, true})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			al := newAttemptLimiter()
			for i, s := range tt.steps {
				at := t0.Add(s.at)
				ok, _ := al.reserve(ann, at)
				if ok != s.wantOK {
					t.Fatalf("step %d at %v: reserve = %v, want %v", i, s.at, ok, s.wantOK)
				}
				if ok {
					al.release(ann, s.o, at)
				}
			}
		})
	}
}

// Failing as a user from one address locks out only that address: the
// user signs in from another one (issue 11, defect 7).
func TestAttemptLimiterPerSource(t *testing.T) {
	al := newAttemptLimiter()
	now := time.Unix(1_780_000_000, 0)
	attacker, owner := pairOf("root@example.com", "203.0.113.66:4444"), pairOf("root@example.com", "192.0.2.10:5555")
	for i := range MaxFreeFailures * 3 {
		if ok, _ := al.reserve(attacker, now); ok {
			if lockout := al.release(attacker, failed, now); i >= MaxFreeFailures-1 && lockout == 0 {
				t.Fatalf("failure %d started no lockout", i)
			}
		}
	}
	if ok, wait := al.reserve(attacker, now); ok || wait <= 0 {
		t.Fatalf("attacker after failing: reserve = %v, wait %v", ok, wait)
	}
	if ok, _ := al.reserve(owner, now); !ok {
		t.Fatal("the attacker's failures locked the user out from another address")
	}
	// Another address of the same IPv6 /64 counts as the same source.
	if pairOf("x", "[2001:db8::1]:1") != pairOf("x", "[2001:db8::2]:2") {
		t.Fatal("two addresses of one /64 are different sources")
	}
}

func TestAttemptLimiterReservesInFlight(t *testing.T) {
	al := newAttemptLimiter()
	now := time.Unix(1_780_000_000, 0)
	p := pairOf("ann", "192.0.2.1:1")
	for i := range MaxFreeFailures {
		if ok, _ := al.reserve(p, now); !ok {
			t.Fatalf("reservation %d refused", i)
		}
	}
	if ok, _ := al.reserve(p, now); ok {
		t.Fatal("more attempts in flight than the limit")
	}
	al.release(p, neutral, now)
	if ok, _ := al.reserve(p, now); !ok {
		t.Fatal("a neutral release did not free its reservation")
	}
}

func TestAttemptLimiterBounded(t *testing.T) {
	al := newAttemptLimiter()
	now := time.Unix(1_780_000_000, 0)
	target := pairOf("target", "192.0.2.1:1")
	// The target fails first, so it is the oldest.
	for range MaxFreeFailures {
		al.reserve(target, now)
		al.release(target, failed, now)
	}
	for i := range maxTrackedPairs + 200 {
		p := pairOf(fmt.Sprintf("spray%d", i), "192.0.2.2:1")
		at := now.Add(time.Duration(i) * time.Millisecond)
		if ok, _ := al.reserve(p, at); ok {
			al.release(p, failed, at)
		}
		if n := al.size(); n > maxTrackedPairs {
			t.Fatalf("%d pairs tracked, limit %d", n, maxTrackedPairs)
		}
	}
	later := now.Add(FailureMemory + LockoutMax + time.Hour)
	al.sweep(later)
	if n := al.size(); n != 0 {
		t.Fatalf("%d pairs left after they were quiet, want 0", n)
	}
	// Pairs that never failed are not kept at all.
	ok := pairOf("ok", "192.0.2.3:1")
	al.reserve(ok, later)
	al.release(ok, succeeded, later)
	if n := al.size(); n != 0 {
		t.Fatalf("%d pairs kept after a success", n)
	}
}
