package replica

import (
	"context"
	"math/rand/v2"
	"time"
)

// ListenFunc holds a notification connection open (store.ListenChanges
// with the database URL bound): it calls ready once listening and notify
// for each change announced, until ctx ends or the connection fails.
type ListenFunc func(ctx context.Context, ready func(), notify func(id int64)) error

// Listen keeps listen's connection up until ctx ends, waking the follower
// at each notification and after each (re)connection, so that the changes
// announced while it was down are read then: a lost notification delays
// a change until the next reconnection or Poll at worst, it never loses
// it. Failed connections are retried after a jittered backoff (100 ms
// doubling to 5 s), so replicas whose database restarted do not all come
// back at once.
func (f *Follower) Listen(ctx context.Context, listen ListenFunc) {
	const minWait, maxWait = 100 * time.Millisecond, 5 * time.Second
	wait := minWait
	for ctx.Err() == nil {
		up := false
		err := listen(ctx, func() {
			up = true
			f.listening.Add(1)
			f.Poke()
		}, func(int64) { f.Poke() })
		if ctx.Err() != nil {
			return
		}
		if up {
			wait = minWait
		}
		f.log.Warn("replica: change notifications lost; reconnecting (the feed is read on reconnection)", "err", err)
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, maxWait)
	}
}

// Listens counts the notification connections Listen has opened (tests).
func (f *Follower) Listens() int64 { return f.listening.Load() }
