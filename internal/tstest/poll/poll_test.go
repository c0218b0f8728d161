package poll

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// recorder is a testing.TB that records a Fatalf instead of ending the
// test; Fatalf ends only the goroutine it runs on, as the real one does.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	panic(r)
}

// run calls f with a recorder and returns what it failed with, if anything.
func run(tb testing.TB, f func(testing.TB)) (failed string) {
	r := &recorder{TB: tb}
	defer func() {
		if p := recover(); p != nil && p != r {
			panic(p)
		}
		failed = r.failed
	}()
	f(r)
	return ""
}

func TestUntil(t *testing.T) {
	tests := []struct {
		name     string
		holdsAt  int // the call on which cond first holds; 0: never
		within   time.Duration
		wantFail []string
	}{
		{"at once", 1, time.Minute, nil},
		{"after a few calls", 4, time.Minute, nil},
		{"never", 0, 20 * time.Millisecond, []string{"the thing: not within 20ms", "state after"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			failed := run(t, func(tb testing.TB) {
				Until(tb, tt.within, "the thing", func() error {
					calls++
					if calls == tt.holdsAt {
						return nil
					}
					return fmt.Errorf("state after %d calls", calls)
				})
			})
			if tt.wantFail == nil {
				if failed != "" || calls != tt.holdsAt {
					t.Fatalf("failed %q after %d calls; want success on call %d", failed, calls, tt.holdsAt)
				}
				return
			}
			for _, want := range tt.wantFail {
				if !strings.Contains(failed, want) {
					t.Errorf("failure %q does not contain %q", failed, want)
				}
			}
			if calls < 2 {
				t.Errorf("cond called %d times before giving up", calls)
			}
		})
	}
}

func TestUntilTrue(t *testing.T) {
	n := 0
	UntilTrue(t, time.Minute, "third call", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Fatalf("cond called %d times, want 3", n)
	}
	failed := run(t, func(tb testing.TB) {
		UntilTrue(tb, 10*time.Millisecond, "never", func() bool { return false })
	})
	if !strings.Contains(failed, "never: not within 10ms") {
		t.Errorf("failure %q", failed)
	}
}

func TestWait(t *testing.T) {
	last := errors.New("last state")
	if _, err := Wait(10*time.Millisecond, func() error { return last }); err != last {
		t.Fatalf("Wait = %v, want the last state", err)
	}
	if _, err := Wait(time.Minute, func() error { return nil }); err != nil {
		t.Fatalf("Wait = %v", err)
	}
}
