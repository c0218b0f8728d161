package local

import (
	"sync"
	"time"

	"github.com/warrenmesh/warren/coordinator/login"
)

// Limits on failed sign-in attempts.
const (
	// MaxAttemptsPerLogin failed attempts end a login: its URL stops
	// working and Wait returns ErrTooManyAttempts.
	MaxAttemptsPerLogin = 5
	// MaxFreeFailures failed attempts for one user name from one source
	// address are allowed; each further one locks that pair out for a
	// backoff that starts at LockoutBase and doubles up to LockoutMax.
	// The same user from another address is not affected, so nobody can
	// lock a user (the break-glass admin included) out by failing on
	// purpose. A pair without a failure for FailureMemory is forgotten.
	MaxFreeFailures = 5
	LockoutBase     = time.Minute
	LockoutMax      = 15 * time.Minute
	FailureMemory   = 30 * time.Minute
	// maxTrackedPairs bounds the limiter's memory.
	maxTrackedPairs = 10000
)

// outcome is how an attempt ended, as far as the limiter cares.
type outcome int

const (
	// neutral: no verdict on the credentials (bad input, store error, a
	// refusal by policy after a correct password).
	neutral outcome = iota
	// failed: wrong credentials; counts towards the limit.
	failed
	// succeeded: signed in; forgets the pair's failures.
	succeeded
)

// pair is a user name (lower case) and a source address (login.SourceKey).
type pair struct{ name, source string }

// attemptLimiter counts failed attempts per (user name, source address).
// Attempts in flight are reserved, so parallel attempts cannot exceed the
// limit either.
type attemptLimiter struct {
	mu    sync.Mutex
	pairs map[pair]*pairState
}

type pairState struct {
	fails       int
	last        time.Time // last failure
	lockedUntil time.Time
	inflight    int
}

func newAttemptLimiter() *attemptLimiter {
	return &attemptLimiter{pairs: make(map[pair]*pairState)}
}

// pairOf returns the pair of a name and a remote address.
func pairOf(name, remote string) pair { return pair{name: name, source: login.SourceKey(remote)} }

// reserve reports whether one more attempt for p may run at now, and if
// so reserves it (the caller must release it). When not, wait says how
// long until the next attempt may run.
func (al *attemptLimiter) reserve(p pair, now time.Time) (ok bool, wait time.Duration) {
	al.mu.Lock()
	defer al.mu.Unlock()
	st := al.pairs[p]
	if st == nil {
		if len(al.pairs) >= maxTrackedPairs {
			al.evictLocked(now)
		}
		st = &pairState{}
		al.pairs[p] = st
	}
	st.forget(now)
	if now.Before(st.lockedUntil) {
		return false, st.lockedUntil.Sub(now)
	}
	// While free, up to MaxFreeFailures attempts may run at once; once in
	// backoff, one probe at a time.
	if st.fails+st.inflight >= max(MaxFreeFailures, st.fails+1) {
		return false, LockoutBase
	}
	st.inflight++
	return true, 0
}

// release ends an attempt reserved for p. It returns the lockout the
// attempt started (0: none).
func (al *attemptLimiter) release(p pair, o outcome, now time.Time) (lockout time.Duration) {
	al.mu.Lock()
	defer al.mu.Unlock()
	st := al.pairs[p]
	if st == nil {
		return 0
	}
	st.inflight--
	switch o {
	case failed:
		st.fails++
		st.last = now
		if n := st.fails - MaxFreeFailures; n >= 0 {
			lockout = LockoutMax
			if n < 5 {
				lockout = min(LockoutBase<<n, LockoutMax)
			}
			st.lockedUntil = now.Add(lockout)
		}
	case succeeded:
		st.fails, st.lockedUntil = 0, time.Time{}
	}
	if st.inflight <= 0 && st.fails == 0 {
		delete(al.pairs, p)
	}
	return lockout
}

// sweep forgets pairs with nothing left to remember.
func (al *attemptLimiter) sweep(now time.Time) {
	al.mu.Lock()
	defer al.mu.Unlock()
	for p, st := range al.pairs {
		st.forget(now)
		if st.inflight <= 0 && st.fails == 0 {
			delete(al.pairs, p)
		}
	}
}

// evictLocked makes room for one more pair: it drops pairs with nothing
// to remember, else the one whose last failure is oldest.
func (al *attemptLimiter) evictLocked(now time.Time) {
	var oldest pair
	var oldestAt time.Time
	found := false
	for p, st := range al.pairs {
		st.forget(now)
		if st.inflight > 0 {
			continue
		}
		if st.fails == 0 {
			delete(al.pairs, p)
			continue
		}
		if !found || st.last.Before(oldestAt) {
			oldest, oldestAt, found = p, st.last, true
		}
	}
	if len(al.pairs) >= maxTrackedPairs && found {
		delete(al.pairs, oldest)
	}
}

// forget clears the failures of a pair quiet for FailureMemory.
func (st *pairState) forget(now time.Time) {
	if st.fails > 0 && now.Sub(st.last) >= FailureMemory && !now.Before(st.lockedUntil) {
		st.fails, st.lockedUntil = 0, time.Time{}
	}
}

// size returns how many pairs are tracked (for tests).
func (al *attemptLimiter) size() int {
	al.mu.Lock()
	defer al.mu.Unlock()
	return len(al.pairs)
}
