// Package replica lets several coordinator processes (replicas) share one
// database. Each replica has a Follower: it reads the store's change feed
// (store.Change, written in the same transaction as every change other
// replicas must see), skips its own changes, and hands each other
// replica's change to an Applier, which reads the entity again and applies
// it to the local netmap engine exactly as a local change would be, so
// the nodes connected to this replica get it. The Follower also beats for
// its replica in the store (presence: a replica that stops beating, even
// one killed without a goodbye, has its nodes' sessions count as gone
// after DeadAfter), and runs the jobs that must run on one replica at a
// time under a lease (Lead).
//
// It must never apply its own replica's changes (they are applied where
// they were made), never skip a change it has not seen (a gap in the IDs
// is read again until it fills or times out; a follower that fell behind
// the pruning resyncs everything), and never write entities itself: the
// Applier (the registry and its peers) owns them.
package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmesh/warren/coordinator/store"
)

// Applier applies other replicas' changes to this replica's state. Its
// methods read the entity from the store again; they run on the
// Follower's goroutine, one at a time.
type Applier interface {
	// Node: node id was created, changed or deleted; remoteOnline says
	// whether another live replica holds its control channel.
	Node(ctx context.Context, id store.NodeID, remoteOnline bool)
	// User: user id was created, changed or deleted.
	User(ctx context.Context, id store.UserID)
	// Policy: a policy version was saved; the newest is to be in force.
	Policy(ctx context.Context)
	// Access: access request id was filed, decided or ended.
	Access(ctx context.Context, id int64)
	// Resync: changes were lost (pruned before this replica read them):
	// read everything again.
	Resync(ctx context.Context)
}

// Defaults.
const (
	DefaultPoll      = 200 * time.Millisecond
	DefaultHeartbeat = 2 * time.Second
	DefaultDeadAfter = 15 * time.Second
	// DefaultRetention is how long change rows are kept: a replica that
	// was unable to read the feed for longer resyncs.
	DefaultRetention = 10 * time.Minute
	// gapWait is how long a missing change ID is waited for: a
	// transaction that took its ID but has not committed yet (PostgreSQL
	// hands identities out before commit) or one that rolled back.
	gapWait = 30 * time.Second
	maxGaps = 10000
)

// Config configures a Follower.
type Config struct {
	Store store.Store // opened with store.Options.ReplicaID = ID
	ID    string      // this replica's ID; required
	Apply Applier     // required
	// Poll is how often the feed is read without a notification (0:
	// DefaultPoll); with Listen running it is the slow catch-up timer.
	Poll time.Duration
	// Heartbeat is how often the replica beats; DeadAfter how long after
	// its last beat a silent replica's sessions stop counting.
	Heartbeat, DeadAfter time.Duration
	// Retention is how long change rows are kept (pruned by the lease
	// holder); 0: DefaultRetention.
	Retention time.Duration
	Logger    *slog.Logger
	Now       func() time.Time
}

// Follower follows the change feed for one replica.
type Follower struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	cursor int64               // the highest change ID read
	gaps   map[int64]time.Time // IDs below cursor not yet seen, since when
	wake   chan struct{}
	seen   chan struct{} // closed and replaced after every read

	listening atomic.Int64 // notification connections opened, see Listen
}

// New returns a Follower whose cursor is the feed's newest change: call it
// before loading the state the changes apply to, so that nothing
// committed in between is missed (a change read twice is harmless).
func New(ctx context.Context, cfg Config) (*Follower, error) {
	if cfg.Store == nil || cfg.Apply == nil || cfg.ID == "" {
		return nil, errors.New("replica: Store, ID and Apply are required")
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.DeadAfter <= 0 {
		cfg.DeadAfter = DefaultDeadAfter
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	_, last, err := cfg.Store.LastChange(ctx)
	if err != nil {
		return nil, fmt.Errorf("replica: %w", err)
	}
	if err := cfg.Store.Heartbeat(ctx, cfg.Now()); err != nil {
		return nil, fmt.Errorf("replica: %w", err)
	}
	return &Follower{cfg: cfg, log: cfg.Logger.With("replica", cfg.ID), cursor: last, gaps: map[int64]time.Time{},
		wake: make(chan struct{}, 1), seen: make(chan struct{})}, nil
}

// Alive is the oldest heartbeat that still counts at now.
func (f *Follower) Alive() time.Time { return f.cfg.Now().Add(-f.cfg.DeadAfter) }

// Start applies the presence of the nodes other live replicas hold (the
// registry loads every node offline). Call it once the state is loaded,
// before Run.
func (f *Follower) Start(ctx context.Context) error {
	ids, err := f.cfg.Store.LiveSessions(ctx, f.Alive())
	if err != nil {
		return fmt.Errorf("replica: %w", err)
	}
	for _, id := range ids {
		f.cfg.Apply.Node(ctx, id, true)
	}
	return nil
}

// Poke makes Run read the feed at once.
func (f *Follower) Poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Cursor returns the highest change ID read so far.
func (f *Follower) Cursor() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cursor
}

// Run reads the feed and beats until ctx ends; then it leaves (its
// sessions are forgotten at once, so other replicas see its nodes
// offline without waiting for DeadAfter).
func (f *Follower) Run(ctx context.Context) error {
	poll := time.NewTicker(f.cfg.Poll)
	defer poll.Stop()
	beat := time.NewTicker(f.cfg.Heartbeat)
	defer beat.Stop()
	defer func() {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := f.cfg.Store.LeaveReplica(lctx); err != nil {
			f.log.Warn("replica: leaving failed; other replicas will see its nodes gone after the dead time", "err", err)
		}
	}()
	read := true
	for {
		if read {
			if err := f.ReadOnce(ctx); err != nil && ctx.Err() == nil {
				f.log.Warn("replica: reading the change feed failed; will retry", "err", err)
			}
		}
		read = true
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-poll.C:
		case <-f.wake:
		case <-beat.C:
			read = false
			if err := f.cfg.Store.Heartbeat(ctx, f.cfg.Now()); err != nil && ctx.Err() == nil {
				f.log.Warn("replica: heartbeat failed", "err", err)
			}
		}
	}
}

// ReadOnce reads every change after the cursor (and any gap still open)
// and applies the other replicas' ones.
func (f *Follower) ReadOnce(ctx context.Context) error {
	f.mu.Lock()
	from := f.cursor
	now := f.cfg.Now()
	for id, since := range f.gaps {
		if now.Sub(since) > gapWait {
			delete(f.gaps, id)
			f.log.Warn("replica: change ID never committed; given up", "id", id)
			continue
		}
		from = min(from, id-1)
	}
	f.mu.Unlock()
	for {
		cs, err := f.cfg.Store.ListChanges(ctx, from, 1000)
		if err != nil {
			return err
		}
		if len(cs) == 0 {
			break
		}
		if err := f.apply(ctx, cs); err != nil {
			return err
		}
		from = cs[len(cs)-1].ID
		if len(cs) < 1000 {
			break
		}
	}
	f.mu.Lock()
	close(f.seen)
	f.seen = make(chan struct{})
	f.mu.Unlock()
	return nil
}

// apply applies one page of changes in order, tracking the cursor and
// gaps.
func (f *Follower) apply(ctx context.Context, cs []store.Change) error {
	f.mu.Lock()
	if f.cursor > 0 && len(f.gaps) == 0 && cs[0].ID > f.cursor+1 {
		// Maybe pruned before this replica read them: if the oldest
		// stored change is past the cursor, they are lost.
		first, _, err := f.cfg.Store.LastChange(ctx)
		if err == nil && first > f.cursor+1 {
			f.cursor = cs[len(cs)-1].ID
			f.mu.Unlock()
			f.log.Warn("replica: changes were pruned before this replica read them; resyncing", "from", first)
			f.cfg.Apply.Resync(ctx)
			return nil
		}
	}
	var todo []store.Change
	type entity struct {
		kind string
		ref  int64
	}
	// One entity changed several times in a page (a node connecting
	// changes its row and its session) is read once: applying reads it
	// as it is now anyway.
	queued := make(map[entity]bool)
	now := f.cfg.Now()
	for _, c := range cs {
		switch {
		case c.ID <= f.cursor:
			if _, ok := f.gaps[c.ID]; !ok {
				continue // read before
			}
			delete(f.gaps, c.ID)
		default:
			for id := f.cursor + 1; id < c.ID && len(f.gaps) < maxGaps && f.cursor > 0; id++ {
				f.gaps[id] = now
			}
			f.cursor = c.ID
		}
		if e := (entity{c.Kind, c.Ref}); c.Origin != f.cfg.ID && !queued[e] {
			queued[e] = true
			todo = append(todo, c)
		}
	}
	f.mu.Unlock()
	for _, c := range todo {
		f.applyOne(ctx, c)
	}
	return nil
}

func (f *Follower) applyOne(ctx context.Context, c store.Change) {
	switch c.Kind {
	case store.ChangeNode:
		f.ApplyNode(ctx, store.NodeID(c.Ref))
	case store.ChangeUser:
		f.cfg.Apply.User(ctx, store.UserID(c.Ref))
	case store.ChangePolicy:
		f.cfg.Apply.Policy(ctx)
	case store.ChangeAccess:
		f.cfg.Apply.Access(ctx, c.Ref)
	default:
		f.log.Warn("replica: unknown change kind; ignored", "kind", c.Kind, "id", c.ID)
	}
}

// ApplyNode hands node id to the Applier, online if another live replica
// holds its control channel: what a node change in the feed does, for
// changes the follower skips as this replica's own (a sweep of dead
// replicas).
func (f *Follower) ApplyNode(ctx context.Context, id store.NodeID) {
	n, err := f.cfg.Store.RemoteSessions(ctx, id, f.Alive())
	if err != nil {
		f.log.Warn("replica: reading a node's presence failed", "node", id, "err", err)
	}
	f.cfg.Apply.Node(ctx, id, n > 0)
}

// WaitFor waits until the follower has read past change id (tests, and
// callers that must see a change before they answer), or ctx ends.
func (f *Follower) WaitFor(ctx context.Context, id int64) error {
	for {
		f.mu.Lock()
		done, ch := f.cursor >= id, f.seen
		f.mu.Unlock()
		if done {
			return nil
		}
		f.Poke()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}
