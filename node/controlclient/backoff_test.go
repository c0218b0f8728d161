package controlclient

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/noise"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/wire"
)

// seeded returns a deterministic jitter source for the tests.
func seeded() *rand.Rand { return rand.New(rand.NewPCG(22, 5)) }

// TestNextBackoff checks the reconnect schedule: every wait is drawn from
// [0, ceiling]; the ceiling is the minimum after a healthy session and
// doubles, up to the maximum, while attempts keep failing.
func TestNextBackoff(t *testing.T) {
	const minB, maxB = time.Second, 8 * time.Second
	tests := []struct {
		name    string
		ceil    time.Duration
		healthy bool
		hi      time.Duration // the wait is in [0, hi]
		next    time.Duration
	}{
		{"healthy session lost", 8 * time.Second, true, time.Second, 2 * time.Second},
		{"healthy session lost, first time", minB, true, time.Second, 2 * time.Second},
		{"first failure", minB, false, time.Second, 2 * time.Second},
		{"doubles", 2 * time.Second, false, 2 * time.Second, 4 * time.Second},
		{"capped", 8 * time.Second, false, 8 * time.Second, 8 * time.Second},
		{"ceiling above the maximum", 30 * time.Second, false, 8 * time.Second, 8 * time.Second},
		{"ceiling below the minimum", 0, false, time.Second, 2 * time.Second},
	}
	rnd := seeded()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var lo, hi time.Duration = tt.hi, 0
			for range 2000 {
				wait, next := nextBackoff(rnd, tt.ceil, tt.healthy, minB, maxB)
				if wait < 0 || wait > tt.hi || next != tt.next {
					t.Fatalf("nextBackoff(%v, healthy %v) = %v, %v; want a wait in [0, %v] and next %v",
						tt.ceil, tt.healthy, wait, next, tt.hi, tt.next)
				}
				lo, hi = min(lo, wait), max(hi, wait)
			}
			// Full jitter: the draws cover the whole range, from near
			// zero (no floor) to near the ceiling.
			if lo > tt.hi/50 || hi < tt.hi-tt.hi/50 {
				t.Errorf("2000 waits spanned [%v, %v], want about [0, %v]", lo, hi, tt.hi)
			}
		})
	}
}

// TestHealthySession: only a session that got its netmap and stayed up for
// the minimum resets the backoff.
func TestHealthySession(t *testing.T) {
	const minB = time.Second
	for _, tt := range []struct {
		registered bool
		lasted     time.Duration
		want       bool
	}{
		{true, time.Hour, true},
		{true, minB, true},
		{true, minB - 1, false}, // accepted, then dropped at once: a crash loop
		{false, time.Hour, false},
		{false, 0, false},
	} {
		if got := healthySession(tt.registered, tt.lasted, minB); got != tt.want {
			t.Errorf("healthySession(%v, %v) = %v, want %v", tt.registered, tt.lasted, got, tt.want)
		}
	}
}

// TestBackoffSpread simulates 10,000 nodes losing one coordinator at the
// same instant (a kill -9): their first reconnects must be spread evenly
// over [0, MinBackoff] (no bucket of the window holds much more than its
// share, so the surviving replicas see a steady rate instead of a spike),
// all within MinBackoff; and if every one of those first attempts fails
// (the load balancer has not yet noticed the dead replica), the second
// attempts are spread over the next, doubled, window, every node having
// tried twice within 3×MinBackoff.
func TestBackoffSpread(t *testing.T) {
	const (
		nodes   = 10000
		buckets = 20
		minB    = time.Second
		maxB    = 30 * time.Second
	)
	rnd := seeded()
	spread := func(name string, at []time.Duration, from, width time.Duration) {
		t.Helper()
		var count [buckets]int
		var sum time.Duration
		for _, a := range at {
			d := a - from
			if d < 0 || d > width {
				t.Fatalf("%s: a reconnect at %v, outside [%v, %v]", name, a, from, from+width)
			}
			count[min(int(d*buckets/width), buckets-1)]++
			sum += d
		}
		share := nodes / buckets
		for i, c := range count {
			// 500 expected per bucket; the binomial deviation is about
			// 22, so 30% off would be a broken jitter, not bad luck.
			if c > share*13/10 || c < share*7/10 {
				t.Errorf("%s: bucket %d of %d holds %d reconnects, want about %d (counts %v)", name, i, buckets, c, share, count)
			}
		}
		if mean := sum / nodes; mean < width*45/100 || mean > width*55/100 {
			t.Errorf("%s: mean wait %v, want about %v", name, mean, width/2)
		}
	}
	first := make([]time.Duration, nodes)
	ceils := make([]time.Duration, nodes)
	for i := range first {
		first[i], ceils[i] = nextBackoff(rnd, maxB, true, minB, maxB) // each had backed off before; the healthy session resets it
	}
	spread("first reconnects", first, 0, minB)
	second := make([]time.Duration, nodes) // the waits before the second attempts
	var last time.Duration                 // when the last second attempt starts
	for i := range second {
		second[i], _ = nextBackoff(rnd, ceils[i], false, minB, maxB)
		last = max(last, first[i]+second[i])
	}
	spread("second waits", second, 0, 2*minB)
	if last > 3*minB {
		t.Errorf("a second attempt at %v, want within %v", last, 3*minB)
	}
}

// TestConnectTimeout: a coordinator that takes the connection and then
// never answers the registration (a frozen replica behind a balancer) is
// left after ConnectTimeout, and the client registers on a later dial; a
// registered channel is not bound by it.
func TestConnectTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	f := newCoord(t, 16)
	c := startClient(t, f, Config{ConnectTimeout: timeout})
	frozen := f.accept()
	// No answer: the client gives up on this one and dials again.
	conn := f.accept()
	for {
		if _, err := wire.ReadMessage(frozen, wire.MaxNodeMessage); err != nil {
			break // closed by the client (it may have sent its registration first)
		}
	}
	// Answer a later channel; on a machine too busy to answer within the
	// timeout the client has moved on, so answer its next one.
	deadline := time.Now().Add(wait)
	for err := tryRegister(conn); err != nil; err = tryRegister(conn) {
		if time.Now().After(deadline) {
			t.Fatalf("never registered: %v", err)
		}
		conn = f.accept()
	}
	poll.UntilTrue(t, wait, "a netmap", func() bool { return c.Netmap() != nil })
	sessions := c.Sessions()
	// Registered, the channel outlives the connect timeout: keep-alives
	// go back and forth over three times its length.
	for start := time.Now(); time.Since(start) < 3*timeout; {
		write(t, conn, &wire.KeepAlive{})
		if _, err := wire.ReadMessage(conn, wire.MaxNodeMessage); err != nil {
			t.Fatalf("the registered channel ended: %v", err)
		}
	}
	if c.Sessions() != sessions || !c.Connected() {
		t.Fatalf("sessions %d (was %d), connected %v; want the registered channel still up", c.Sessions(), sessions, c.Connected())
	}
}

// tryRegister is register without failing the test (the client may have
// given up on conn meanwhile), followed by a keep-alive round trip.
func tryRegister(conn *noise.Conn) error {
	if _, err := wire.ReadMessage(conn, wire.MaxNodeMessage); err != nil {
		return err
	}
	self := &wire.Node{ID: 1, Name: "node", Addresses: []netip.Prefix{netip.MustParsePrefix("100.64.0.1/32")}}
	if err := wire.WriteMessage(conn, &wire.RegisterResponse{Authorized: true, Self: self}); err != nil {
		return err
	}
	if _, err := wire.ReadMessage(conn, wire.MaxNodeMessage); err != nil {
		return err
	}
	if err := wire.WriteMessage(conn, &wire.MapResponse{Version: 1, Full: true, Self: self}); err != nil {
		return err
	}
	// The client answers a keep-alive only after it applied the map.
	if err := wire.WriteMessage(conn, &wire.KeepAlive{}); err != nil {
		return err
	}
	_, err := wire.ReadMessage(conn, wire.MaxNodeMessage)
	return err
}
