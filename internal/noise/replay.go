package noise

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/warrenmesh/warren/internal/key"
)

// DefaultReplayWindow is the clock window NewReplayGuard uses when given a
// window <= 0: a handshake timestamp may differ from the coordinator's clock
// by at most this much either way.
const DefaultReplayWindow = 2 * time.Minute

// minPruneSize is the map size below which ReplayGuard does not prune on
// size alone.
const minPruneSize = 64

// ReplayGuard remembers the newest accepted handshake timestamp per machine
// key. It rejects a handshake whose timestamp is not newer than the last one
// accepted for that machine, or is more than the window away from the
// coordinator's clock. It is safe for concurrent use.
//
// Memory is bounded: entries older than the window are pruned, because a
// replay of them fails the window check anyway. A node whose clock steps
// backwards is refused until its clock passes its last accepted handshake
// (at most twice the window).
type ReplayGuard struct {
	window time.Duration

	mu        sync.Mutex
	seen      map[key.MachinePublic]time.Time
	pruneSize int       // prune when len(seen) reaches this
	lastPrune time.Time // or when a window has passed since this
}

// NewReplayGuard returns a guard accepting timestamps within ±window of the
// coordinator's clock. A window <= 0 means DefaultReplayWindow.
func NewReplayGuard(window time.Duration) *ReplayGuard {
	if window <= 0 {
		window = DefaultReplayWindow
	}
	return &ReplayGuard{
		window:    window,
		seen:      make(map[key.MachinePublic]time.Time),
		pruneSize: minPruneSize,
	}
}

// Window returns the accepted clock difference.
func (g *ReplayGuard) Window() time.Duration { return g.window }

// Check accepts a handshake from machine k stamped ts, judged at the
// coordinator's time now, and records ts as k's newest. It returns an error
// wrapping ErrReplay if ts is outside ±window of now or not newer than the
// last timestamp accepted for k.
func (g *ReplayGuard) Check(k key.MachinePublic, ts, now time.Time) error {
	if skew := ts.Sub(now); skew > g.window || skew < -g.window {
		dir := "ahead of"
		if skew < 0 {
			dir, skew = "behind", -skew
		}
		return fmt.Errorf("%w: handshake time %s is %s %s the coordinator's clock (allowed ±%s): set the node's clock right (NTP)",
			ErrReplay, ts.UTC().Format(time.RFC3339Nano), skew.Round(time.Millisecond), dir, g.window)
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	if last, ok := g.seen[k]; ok && !ts.After(last) {
		return fmt.Errorf("%w: handshake time %s is not after this machine's last accepted handshake at %s: a replay, or the node's clock went backwards",
			ErrReplay, ts.UTC().Format(time.RFC3339Nano), last.UTC().Format(time.RFC3339Nano))
	}
	g.seen[k] = ts
	if len(g.seen) >= g.pruneSize || now.Sub(g.lastPrune) >= g.window {
		g.pruneLocked(now)
	}
	return nil
}

// pruneLocked drops entries older than the window, which the window check
// rejects without them, and resizes the next size trigger so pruning costs
// amortised O(1) per Check.
func (g *ReplayGuard) pruneLocked(now time.Time) {
	cutoff := now.Add(-g.window)
	for k, ts := range g.seen {
		if ts.Before(cutoff) {
			delete(g.seen, k)
		}
	}
	g.lastPrune = now
	g.pruneSize = max(2*len(g.seen), minPruneSize)
}

// size returns the number of remembered machines, for tests.
func (g *ReplayGuard) size() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.seen)
}

// The handshake timestamp is TAI64N as in WireGuard: 8 bytes big-endian
// TAI64 label (2^62 + 10 + Unix seconds, ignoring leap seconds) and 4 bytes
// big-endian nanoseconds. It is not whitened: its only reader is the
// coordinator the node authenticates.
const (
	timestampSize = 12
	tai64Base     = uint64(1)<<62 + 10
	// maxUnixSeconds bounds accepted timestamps (about year 36812) so the
	// conversion to time.Time cannot overflow.
	maxUnixSeconds = 1 << 40
)

// appendTimestamp appends the TAI64N form of t to b.
func appendTimestamp(b []byte, t time.Time) []byte {
	b = binary.BigEndian.AppendUint64(b, tai64Base+uint64(t.Unix()))
	return binary.BigEndian.AppendUint32(b, uint32(t.Nanosecond()))
}

// parseTimestamp decodes a handshake timestamp written by appendTimestamp.
func parseTimestamp(b []byte) (time.Time, error) {
	if len(b) != timestampSize {
		return time.Time{}, fmt.Errorf("handshake timestamp is %d bytes, want %d", len(b), timestampSize)
	}
	label := binary.BigEndian.Uint64(b)
	nanos := binary.BigEndian.Uint32(b[8:])
	if nanos >= 1e9 {
		return time.Time{}, fmt.Errorf("handshake timestamp has %d nanoseconds, want < 1e9", nanos)
	}
	if label < tai64Base-maxUnixSeconds || label > tai64Base+maxUnixSeconds {
		return time.Time{}, errors.New("handshake timestamp is out of range")
	}
	// Both fit in an int64: tai64Base+maxUnixSeconds < 2^63.
	return time.Unix(int64(label)-int64(tai64Base), int64(nanos)), nil
}
