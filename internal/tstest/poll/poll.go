// Package poll waits in tests for a condition that has no event to wait
// on: state behind an API the test cannot subscribe to (a node's status,
// a path chosen by a peer, a file another process writes). Where the code
// under test offers a channel or callback, wait on that instead.
//
// Polling here is never synchronisation: the limit only ends a test that
// would otherwise hang, so give it generously (seconds, not milliseconds)
// and never use it to assert speed. This package must never be imported by
// production code.
package poll

import (
	"errors"
	"testing"
	"time"
)

// Until calls cond until it returns nil or within has passed, and returns
// how long that took. cond's error says what the state is while it does not
// hold; on timeout Until fails tb with what and the last such error, so the
// failure shows how far things got. It must run on the test's goroutine.
func Until(tb testing.TB, within time.Duration, what string, cond func() error) time.Duration {
	tb.Helper()
	took, err := Wait(within, cond)
	if err != nil {
		tb.Fatalf("%s: not within %v: %v", what, within, err)
	}
	return took
}

// UntilTrue is Until for a condition with no state worth reporting.
func UntilTrue(tb testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	tb.Helper()
	return Until(tb, within, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

var errNotYet = errors.New("the condition still does not hold")

// Wait is Until without a testing.TB, for helpers that return an error
// (code on other goroutines, benchmarks that report instead of failing):
// it returns the time taken, or cond's last error once within has passed.
func Wait(within time.Duration, cond func() error) (time.Duration, error) {
	start := time.Now()
	interval := time.Millisecond
	for {
		err := cond()
		if err == nil {
			return time.Since(start), nil
		}
		if time.Since(start) >= within {
			return time.Since(start), err
		}
		time.Sleep(interval) // the polling interval, not synchronisation
		interval = min(2*interval, 50*time.Millisecond)
	}
}
