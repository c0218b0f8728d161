package login

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/tstest/testclock"
)

func newTestTable(cfg TableConfig) (*Table[int], *testclock.Clock) {
	clock := testclock.New(time.Unix(1_780_000_000, 0))
	cfg.Now = clock.Now
	return NewTable[int](cfg), clock
}

func machine() key.MachinePublic { return key.NewMachine().Public() }

func TestTableBounds(t *testing.T) {
	tb, _ := newTestTable(TableConfig{Max: 4, MaxPerSource: 2})
	for _, src := range []string{"198.51.100.1:1", "198.51.100.1:2"} {
		if _, err := tb.Begin(machine(), src, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tb.Begin(machine(), "198.51.100.1:3", 0); !errors.Is(err, ErrTooManyFromSource) || !errors.Is(err, ErrTooManyLogins) {
		t.Fatalf("third login from one address: %v", err)
	}
	for _, src := range []string{"198.51.100.2:1", "[2001:db8::1]:1"} {
		if _, err := tb.Begin(machine(), src, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tb.Begin(machine(), "198.51.100.3:1", 0); !errors.Is(err, ErrTooManyLogins) || errors.Is(err, ErrTooManyFromSource) {
		t.Fatalf("login beyond the total: %v", err)
	}
	// A device has one login: its newest replaces its older one, and does
	// not count twice against its address.
	m := machine()
	tb2, _ := newTestTable(TableConfig{MaxPerSource: 1})
	first, err := tb2.Begin(m, "192.0.2.1:1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb2.Begin(m, "192.0.2.1:2", 0); err != nil {
		t.Fatalf("the same device again: %v", err)
	}
	if _, err := tb2.Wait(context.Background(), m, first.ID); !errors.Is(err, ErrUnknownLogin) {
		t.Fatalf("Wait for the superseded login: %v", err)
	}
}

func TestTableOutcomeOnce(t *testing.T) {
	tb, _ := newTestTable(TableConfig{})
	m := machine()
	e, err := tb.Begin(m, "192.0.2.1:1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Wait(context.Background(), machine(), e.ID); !errors.Is(err, ErrUnknownLogin) {
		t.Fatalf("Wait by another machine: %v", err)
	}
	tb.Finish(e, store.User{ID: 7}, nil)
	if u, err := tb.Wait(context.Background(), m, e.ID); err != nil || u.ID != 7 {
		t.Fatalf("Wait: %+v, %v", u, err)
	}
	if _, err := tb.Wait(context.Background(), m, e.ID); !errors.Is(err, ErrUnknownLogin) {
		t.Fatalf("second Wait: %v", err)
	}
	// Expiry: the sweep ends a login and reports it once.
	var expired []key.MachinePublic
	tb, clock := newTestTable(TableConfig{Timeout: time.Minute, OnExpire: func(m key.MachinePublic) { expired = append(expired, m) }})
	e, _ = tb.Begin(m, "192.0.2.1:1", 0)
	clock.Advance(time.Minute)
	if _, err := tb.Begin(machine(), "192.0.2.1:1", 0); err != nil {
		t.Fatal(err)
	}
	if len(expired) != 1 || expired[0] != m || tb.Len() != 1 {
		t.Fatalf("after the sweep: expired %v, %d open", expired, tb.Len())
	}
	if _, err := tb.Wait(context.Background(), m, e.ID); !errors.Is(err, ErrUnknownLogin) {
		t.Fatalf("Wait for an expired login: %v", err)
	}
	tb.Close()
	if _, err := tb.Begin(machine(), "192.0.2.1:1", 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Begin after Close: %v", err)
	}
}

func TestSourceKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:443":             "192.0.2.1",
		"192.0.2.1":                 "192.0.2.1",
		"[::ffff:192.0.2.1]:1":      "192.0.2.1",
		"[2001:db8:1:2:3::4]:5":     "2001:db8:1:2::/64",
		"[fe80::1%eth0]:5":          "fe80::/64",
		"not an address":            "not an address",
		"[2001:db8:1:2:ffff::]:443": "2001:db8:1:2::/64",
	} {
		if got := SourceKey(in); got != want {
			t.Errorf("SourceKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// A login another method of a choice finished stays, finished, after its
// Wait, so that its links say the sign-in is over; others are forgotten.
func TestTableKeepsLoginsOverUntilExpiry(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tab := NewTable[int](TableConfig{Timeout: time.Minute, Now: func() time.Time { return now }})
	m := key.NewMachine().Public()
	e, err := tab.Begin(m, "192.0.2.1:1", 0)
	if err != nil {
		t.Fatal(err)
	}
	tab.Finish(e, store.User{}, ErrLoginOver)
	if _, err := tab.Wait(t.Context(), m, e.ID); !errors.Is(err, ErrLoginOver) {
		t.Fatalf("Wait = %v", err)
	}
	var over error
	if err := tab.With(e.ID, func(x *Entry[int]) error { _, over = x.Outcome(); return nil }); err != nil || !errors.Is(over, ErrLoginOver) {
		t.Fatalf("after Wait: %v, outcome %v; want the login kept as over", err, over)
	}
	if _, err := tab.Wait(t.Context(), m, e.ID); !errors.Is(err, ErrUnknownLogin) {
		t.Fatalf("second Wait = %v, want ErrUnknownLogin", err)
	}
	now = now.Add(2 * time.Minute)
	if tab.With(e.ID, func(*Entry[int]) error { return nil }) == nil || tab.Len() != 0 {
		t.Fatal("the login outlived its time")
	}
}
