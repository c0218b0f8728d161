package coordinator

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"time"

	"github.com/warrenmesh/warren/coordinator/replica"
	"github.com/warrenmesh/warren/coordinator/store"
)

// ReplicationConfig tunes a replica (Config.Replica); zero values are the
// package replica defaults.
type ReplicationConfig struct {
	// Poll is how often the change feed is read.
	Poll time.Duration
	// Heartbeat and DeadAfter: how often the replica beats, and how long
	// after its last beat a silent replica's nodes count as offline.
	Heartbeat, DeadAfter time.Duration
	// LeaseTTL is how long the jobs lease lasts unless renewed (another
	// replica takes the jobs over within it when the holder dies).
	LeaseTTL time.Duration
}

// newReplicaID names a replica: its host and a random suffix, new at
// every start (a restarted replica's old sessions are swept as a dead
// replica's).
func newReplicaID() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	if host == "" {
		host = "replica"
	}
	return host + "-" + hex.EncodeToString(b[:])
}

// listenPoll is how often a PostgreSQL replica reads the change feed
// without a notification.
const listenPoll = 5 * time.Second

// newFollower creates the change-feed follower in replica mode.
func (c *Coordinator) newFollower(ctx context.Context) error {
	if !c.cfg.Replica {
		return nil
	}
	rc := c.cfg.Replication
	if rc.Poll <= 0 && store.IsPostgresURL(c.cfg.Store) {
		rc.Poll = listenPoll // notifications wake the follower; the timer is the safety net
	}
	f, err := replica.New(ctx, replica.Config{Store: c.store, ID: c.cfg.ReplicaID, Apply: replicaApplier{c},
		Poll: rc.Poll, Heartbeat: rc.Heartbeat, DeadAfter: rc.DeadAfter, Logger: c.log})
	if err != nil {
		return err
	}
	c.follower = f
	c.leader = &replica.Leader{Store: c.store, TTL: rc.LeaseTTL}
	return nil
}

// ReplicaID names this coordinator among the replicas sharing its store
// ("" unless Config.Replica).
func (c *Coordinator) ReplicaID() string { return c.cfg.ReplicaID }

// Leading reports whether this coordinator runs the jobs that must run
// once: always without replicas, else while it holds the jobs lease.
func (c *Coordinator) Leading() bool { return c.leader == nil || c.leader.Leading() }

// Follower returns the change-feed follower (nil unless Config.Replica).
func (c *Coordinator) Follower() *replica.Follower { return c.follower }

// jobs are the background loops that must run on one replica at a time:
// log-sink export, alerts, retention, access-grant expiry records, IdP
// rechecks (each writes the shared store, or sends something out once).
type jobs []func(ctx context.Context)

func (j *jobs) add(fn func(ctx context.Context)) { *j = append(*j, fn) }

// run runs every job until ctx ends.
func (j jobs) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, fn := range j {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(ctx)
		}()
	}
	wg.Wait()
}

// startJobs starts the once-only jobs: at once without replicas; under
// the jobs lease, together with the sweeping of dead replicas and the
// pruning of the change feed, with them. It also starts the follower.
func (c *Coordinator) startJobs(ctx context.Context, once jobs) {
	if c.follower == nil {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			once.run(ctx)
		}()
		return
	}
	once.add(c.housekeeping)
	c.leader.Jobs = once.run
	if url := c.cfg.Store; store.IsPostgresURL(url) {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.follower.Listen(ctx, func(ctx context.Context, ready func(), notify func(int64)) error {
				return store.ListenChanges(ctx, url, ready, notify)
			})
		}()
	}
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		_ = c.follower.Run(ctx)
	}()
	go func() {
		defer c.wg.Done()
		c.leader.Run(ctx)
	}()
}

// housekeeping forgets dead replicas (their nodes go offline on every
// replica) and prunes old changes, until ctx ends.
func (c *Coordinator) housekeeping(ctx context.Context) {
	rc := c.cfg.Replication
	every := cmp.Or(rc.Heartbeat, replica.DefaultHeartbeat)
	dead := cmp.Or(rc.DeadAfter, replica.DefaultDeadAfter)
	t := time.NewTicker(every)
	defer t.Stop()
	lastPrune := time.Time{}
	for {
		now := time.Now()
		if ids, err := c.store.SweepReplicas(ctx, now.Add(-dead)); err != nil && ctx.Err() == nil {
			c.log.Warn("replica: sweeping dead replicas failed", "err", err)
		} else if len(ids) > 0 {
			c.log.Info("replica: a replica stopped beating; its nodes are offline unless they reconnect", "nodes", len(ids))
			// The sweep's changes are this replica's own, which its
			// follower skips: apply them here.
			for _, id := range ids {
				c.follower.ApplyNode(ctx, id)
			}
		}
		if now.Sub(lastPrune) > time.Minute {
			lastPrune = now
			if _, err := c.store.PruneChanges(ctx, now.Add(-replica.DefaultRetention)); err != nil && ctx.Err() == nil {
				c.log.Warn("replica: pruning the change feed failed", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// replicaApplier applies other replicas' changes to this coordinator.
type replicaApplier struct{ c *Coordinator }

func (a replicaApplier) Node(ctx context.Context, id store.NodeID, remoteOnline bool) {
	a.c.registry.Refresh(ctx, id, remoteOnline)
}

func (a replicaApplier) User(ctx context.Context, id store.UserID) { a.c.registry.RefreshUser(ctx, id) }

func (a replicaApplier) Policy(ctx context.Context) {
	if err := a.c.policy.Sync(ctx); err != nil {
		a.c.log.Error("replica: policy from the store not applied", "err", err)
	}
}

func (a replicaApplier) Access(ctx context.Context, id int64) {
	if err := a.c.access.Sync(ctx, id); err != nil {
		a.c.log.Error("replica: access grant from the store not applied", "err", err)
	}
}

func (a replicaApplier) Resync(ctx context.Context) {
	a.Policy(ctx)
	a.c.registry.Resync(ctx)
}
