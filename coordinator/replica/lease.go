package replica

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/warrenmesh/warren/coordinator/store"
)

// JobsLease is the lease under which the jobs that must run once (see
// Leader) run.
const JobsLease = "jobs"

// DefaultLeaseTTL is how long a lease lasts unless renewed; the holder
// renews it every third of that, so a replica that dies without releasing
// it is replaced within DefaultLeaseTTL.
const DefaultLeaseTTL = 15 * time.Second

// Leader runs jobs on one replica at a time: whoever holds the store's
// lease named Name (a row with an expiry, the same in every dialect)
// runs them, and another replica takes over once the holder releases the
// lease (a clean stop) or stops renewing it (a crash: within TTL).
type Leader struct {
	Store store.Store
	Name  string        // default JobsLease
	TTL   time.Duration // default DefaultLeaseTTL
	Now   func() time.Time
	// Jobs runs while the lease is held; its ctx ends when the lease is
	// lost or Run's ctx ends, and Run waits for it to return before it
	// tries again.
	Jobs func(ctx context.Context)
	// Try, if set, is how often a replica without the lease tries for it
	// (default TTL/3).
	Try time.Duration

	leading atomic.Bool
}

// Leading reports whether this replica holds the lease now.
func (l *Leader) Leading() bool { return l.leading.Load() }

// Run tries for the lease, runs Jobs while it holds it, and releases it
// when ctx ends.
func (l *Leader) Run(ctx context.Context) {
	name, ttl, now := l.Name, l.TTL, l.Now
	if name == "" {
		name = JobsLease
	}
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	if now == nil {
		now = time.Now
	}
	try := l.Try
	if try <= 0 {
		try = ttl / 3
	}
	t := time.NewTicker(try)
	defer t.Stop()
	var stop func() // ends the running jobs; nil when none run
	done := make(chan struct{})
	release := func() {
		if stop != nil {
			stop()
			<-done
			stop = nil
		}
		l.leading.Store(false)
	}
	defer func() {
		release()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = l.Store.ReleaseLease(rctx, name)
	}()
	for {
		at := now()
		held, err := l.Store.TryLease(ctx, name, at, at.Add(ttl))
		switch {
		case err != nil || !held:
			release()
		case stop == nil:
			jctx, cancel := context.WithCancel(ctx)
			stop = cancel
			done = make(chan struct{})
			l.leading.Store(true)
			go func() {
				defer close(done)
				if l.Jobs != nil {
					l.Jobs(jctx)
				}
				<-jctx.Done()
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
