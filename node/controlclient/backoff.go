package controlclient

import (
	"math/rand/v2"
	"time"
)

// The reconnect schedule. When a coordinator dies, every node connected to
// it loses its channel in the same instant; if they all redialled after
// the same delay they would arrive at the surviving replicas (or the
// restarted coordinator) together, thousands in one millisecond. So every
// wait is "full jitter": uniform in [0, ceiling]. The ceiling is
// MinBackoff after the loss of a healthy session (one that registered and
// stayed up for at least MinBackoff), so a node whose coordinator died is
// back within about MinBackoff on average half of it; it doubles, up to
// MaxBackoff, only while attempts keep failing.

// nextBackoff returns how long to wait before the next connect, given the
// ceiling that was due for it and whether the session that just ended was
// healthy, and the ceiling for the attempt after. It draws from rnd only.
func nextBackoff(rnd *rand.Rand, ceil time.Duration, healthy bool, minB, maxB time.Duration) (wait, next time.Duration) {
	if healthy || ceil < minB {
		ceil = minB
	}
	ceil = min(ceil, maxB)
	wait = time.Duration(rnd.Int64N(int64(ceil) + 1))
	return wait, min(2*ceil, maxB)
}

// healthySession reports whether a session counts as healthy for the
// backoff: it registered (the coordinator accepted the node and sent its
// map) and stayed up for at least minB. A coordinator that accepts and at
// once drops the node again does not reset the backoff, so a crash loop
// behind a load balancer still sees the nodes back off.
func healthySession(registered bool, lasted, minB time.Duration) bool {
	return registered && lasted >= minB
}

// newRand returns a source for the jitter, seeded from the runtime's
// random source so that nodes started together still spread out.
func newRand() *rand.Rand {
	return rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
}
