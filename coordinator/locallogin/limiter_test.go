package locallogin

import (
	"fmt"
	"testing"
	"time"
)

func TestNameLimiter(t *testing.T) {
	t0 := time.Unix(1_780_000_000, 0)
	tests := []struct {
		name    string
		fails   []time.Duration // failures, as offsets from t0
		success time.Duration   // a success at this offset (0: none)
		at      time.Duration   // when the next attempt comes
		want    bool
	}{
		{"no history", nil, 0, 0, true},
		{"four failures", []time.Duration{0, 1, 2, 3}, 0, 4, true},
		{"five failures", []time.Duration{0, 1, 2, 3, 4}, 0, 5, false},
		{"five failures, oldest left the window", []time.Duration{0, time.Minute, 2 * time.Minute, 3 * time.Minute, 4 * time.Minute}, 0, UserFailureWindow, true},
		{"five failures, none left yet", []time.Duration{0, 1, 2, 3, 4}, 0, UserFailureWindow - 1, false},
		{"success forgets failures", []time.Duration{0, 1, 2, 3}, 4, 5, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nl := newNameLimiter()
			for _, d := range tt.fails {
				if !nl.reserve("ann", t0.Add(d)) {
					t.Fatalf("reserve at %v refused", d)
				}
				nl.release("ann", failed, t0.Add(d))
			}
			if tt.success != 0 {
				if !nl.reserve("ann", t0.Add(tt.success)) {
					t.Fatal("reserve refused")
				}
				nl.release("ann", succeeded, t0.Add(tt.success))
				for range MaxFailuresPerUser - 1 {
					nl.reserve("ann", t0.Add(tt.success))
					nl.release("ann", failed, t0.Add(tt.success))
				}
			}
			if got := nl.reserve("ann", t0.Add(tt.at)); got != tt.want {
				t.Fatalf("reserve = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNameLimiterReservesInFlight(t *testing.T) {
	nl := newNameLimiter()
	now := time.Unix(1_780_000_000, 0)
	for i := range MaxFailuresPerUser {
		if !nl.reserve("ann", now) {
			t.Fatalf("reservation %d refused", i)
		}
	}
	if nl.reserve("ann", now) {
		t.Fatal("more attempts in flight than the limit")
	}
	nl.release("ann", neutral, now)
	if !nl.reserve("ann", now) {
		t.Fatal("a neutral release did not free its reservation")
	}
}

func TestNameLimiterBounded(t *testing.T) {
	nl := newNameLimiter()
	now := time.Unix(1_780_000_000, 0)
	// The target fails first, so it is the oldest.
	for range MaxFailuresPerUser {
		nl.reserve("target", now)
		nl.release("target", failed, now)
	}
	for i := range maxTrackedNames + 200 {
		name := fmt.Sprintf("spray%d", i)
		at := now.Add(time.Duration(i) * time.Millisecond)
		if nl.reserve(name, at) {
			nl.release(name, failed, at)
		}
		if n := nl.size(); n > maxTrackedNames {
			t.Fatalf("%d names tracked, limit %d", n, maxTrackedNames)
		}
	}
	later := now.Add(UserFailureWindow + time.Hour)
	nl.sweep(later)
	if n := nl.size(); n != 0 {
		t.Fatalf("%d names left after the window, want 0", n)
	}
	// Names that never failed are not kept at all.
	nl.reserve("ok", later)
	nl.release("ok", succeeded, later)
	if n := nl.size(); n != 0 {
		t.Fatalf("%d names kept after a success", n)
	}
}
