package locallogin

import (
	"sync"
	"time"
)

// Limits on failed sign-in attempts.
const (
	// MaxAttemptsPerLogin failed attempts end a login: its URL stops
	// working and Wait returns ErrTooManyAttempts.
	MaxAttemptsPerLogin = 5
	// MaxFailuresPerUser failed attempts for one user name within
	// UserFailureWindow make further attempts for that name be refused
	// until the oldest failure leaves the window.
	MaxFailuresPerUser = 5
	UserFailureWindow  = 15 * time.Minute
	// maxTrackedNames bounds the memory of the per-name limiter.
	maxTrackedNames = 10000
)

// outcome is how an attempt for a user name ended, as far as the limiter
// cares.
type outcome int

const (
	// neutral: no verdict on the credentials (bad input, store error, a
	// refusal by policy after a correct password).
	neutral outcome = iota
	// failed: wrong credentials; counts towards the limit.
	failed
	// succeeded: signed in; forgets the name's failures.
	succeeded
)

// nameLimiter counts failed attempts per user name in a sliding window.
// Attempts in flight are reserved, so parallel attempts cannot exceed the
// limit either. It holds at most maxTrackedNames names: when full it drops
// names whose failures have all left the window, then the name whose last
// failure is oldest.
type nameLimiter struct {
	mu    sync.Mutex
	names map[string]*nameState
}

type nameState struct {
	fails    []time.Time // at most MaxFailuresPerUser, oldest first
	inflight int
}

func newNameLimiter() *nameLimiter {
	return &nameLimiter{names: make(map[string]*nameState)}
}

// reserve reports whether one more attempt for name may run at now, and if
// so reserves it; the caller must call release with the same name.
func (nl *nameLimiter) reserve(name string, now time.Time) bool {
	nl.mu.Lock()
	defer nl.mu.Unlock()
	st := nl.names[name]
	if st == nil {
		if len(nl.names) >= maxTrackedNames {
			nl.evictLocked(now)
		}
		st = &nameState{}
		nl.names[name] = st
	}
	st.prune(now)
	if len(st.fails)+st.inflight >= MaxFailuresPerUser {
		return false
	}
	st.inflight++
	return true
}

// release ends an attempt reserved for name.
func (nl *nameLimiter) release(name string, o outcome, now time.Time) {
	nl.mu.Lock()
	defer nl.mu.Unlock()
	st := nl.names[name]
	if st == nil {
		return
	}
	st.inflight--
	switch o {
	case failed:
		st.fails = append(st.fails, now)
		if n := len(st.fails) - MaxFailuresPerUser; n > 0 {
			st.fails = st.fails[n:]
		}
	case succeeded:
		st.fails = nil
	}
	st.prune(now)
	if st.inflight <= 0 && len(st.fails) == 0 {
		delete(nl.names, name)
	}
}

// sweep forgets names with no failures left in the window.
func (nl *nameLimiter) sweep(now time.Time) {
	nl.mu.Lock()
	defer nl.mu.Unlock()
	for name, st := range nl.names {
		st.prune(now)
		if st.inflight <= 0 && len(st.fails) == 0 {
			delete(nl.names, name)
		}
	}
}

// evictLocked makes room for one more name.
func (nl *nameLimiter) evictLocked(now time.Time) {
	var oldest string
	var oldestAt time.Time
	for name, st := range nl.names {
		st.prune(now)
		if st.inflight > 0 {
			continue
		}
		if len(st.fails) == 0 {
			delete(nl.names, name)
			continue
		}
		if last := st.fails[len(st.fails)-1]; oldest == "" || last.Before(oldestAt) {
			oldest, oldestAt = name, last
		}
	}
	if len(nl.names) >= maxTrackedNames && oldest != "" {
		delete(nl.names, oldest)
	}
}

// prune drops failures that have left the window.
func (st *nameState) prune(now time.Time) {
	i := 0
	for i < len(st.fails) && now.Sub(st.fails[i]) >= UserFailureWindow {
		i++
	}
	st.fails = st.fails[i:]
}

// size returns how many names are tracked (for tests).
func (nl *nameLimiter) size() int {
	nl.mu.Lock()
	defer nl.mu.Unlock()
	return len(nl.names)
}
