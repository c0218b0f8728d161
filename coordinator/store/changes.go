package store

import (
	"context"
	"fmt"
	"time"
)

// The change feed between coordinator replicas that share one database
// (package coordinator/replica reads it). Every write another replica must
// see appends a Change in the same transaction as the write itself, here
// in the store layer, so that no caller can forget it: a change is in the
// feed if and only if it was committed. A Change names what changed, never
// how: a follower reads the entity again.

// Change kinds: Ref is a NodeID, UserID, PolicyVersion.ID or
// AccessRequest.ID.
const (
	ChangeNode   = "node"   // created, updated (endpoints, attributes, presence too) or deleted
	ChangeUser   = "user"   // created, updated (disabled, groups, role) or deleted
	ChangePolicy = "policy" // a policy version was saved
	ChangeAccess = "access" // an access request was filed or decided, or a grant ended
)

// Change is one entry of the change feed.
type Change struct {
	ID     int64
	Origin string // the ReplicaID of the store that wrote it
	Kind   string
	Ref    int64
	At     time.Time
}

// maxChanges bounds one ListChanges page.
const maxChanges = 10000

// appendChange records a change of kind to ref, made by this store's
// replica, in the transaction (or statement) q runs in; nothing without a
// replica ID (no one follows the feed).
func (q queries) appendChange(ctx context.Context, kind string, ref int64) error {
	if q.origin == "" {
		return nil
	}
	_, err := q.q.ExecContext(ctx, `INSERT INTO changes (origin, kind, ref, at) VALUES (?, ?, ?, ?)`,
		q.origin, kind, ref, time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("record %s %d change: %w", kind, ref, err)
	}
	return nil
}

// ListChanges returns up to n changes with IDs above after, in ID order
// (n <= 0 or above 10000: 10000).
func (q queries) ListChanges(ctx context.Context, after int64, n int) ([]Change, error) {
	if n <= 0 || n > maxChanges {
		n = maxChanges
	}
	return list(ctx, q, "changes", `SELECT id, origin, kind, ref, at FROM changes WHERE id > ? ORDER BY id LIMIT ?`,
		func(row interface{ Scan(...any) error }) (Change, error) {
			var c Change
			var at int64
			err := row.Scan(&c.ID, &c.Origin, &c.Kind, &c.Ref, &at)
			c.At = fromNanos(at)
			return c, err
		}, after, n)
}

// LastChange returns the newest change's ID (0: none) and the oldest
// one's, so a follower that fell behind the pruning can tell.
func (q queries) LastChange(ctx context.Context) (first, last int64, err error) {
	err = q.q.QueryRowContext(ctx, `SELECT COALESCE(MIN(id), 0), COALESCE(MAX(id), 0) FROM changes`).Scan(&first, &last)
	if err != nil {
		return 0, 0, fmt.Errorf("last change: %w", err)
	}
	return first, last, nil
}

// PruneChanges deletes the changes older than before, keeping the newest
// (so the next ID stays above every ID handed out), and returns how many
// it deleted.
func (q queries) PruneChanges(ctx context.Context, before time.Time) (int64, error) {
	res, err := q.q.ExecContext(ctx, `DELETE FROM changes WHERE at < ? AND id < (SELECT MAX(id) FROM changes)`, nanos(before))
	if err != nil {
		return 0, fmt.Errorf("prune changes: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune changes: %w", err)
	}
	return n, nil
}

// SetSession records whether this store's replica holds a control
// channel of node id (open: since at), and appends the node's change so
// that the other replicas see it online or offline. Without a replica ID
// it records nothing.
func (q queries) SetSession(ctx context.Context, id NodeID, open bool, at time.Time) error {
	if q.origin == "" {
		return nil
	}
	var err error
	if open {
		_, err = q.q.ExecContext(ctx, `INSERT INTO node_sessions (node_id, replica, since) VALUES (?, ?, ?)
			ON CONFLICT (node_id, replica) DO UPDATE SET since = excluded.since`, id, q.origin, nanos(at))
	} else {
		_, err = q.q.ExecContext(ctx, `DELETE FROM node_sessions WHERE node_id = ? AND replica = ?`, id, q.origin)
	}
	if err != nil {
		return fmt.Errorf("session of node %d: %w", id, err)
	}
	return q.appendChange(ctx, ChangeNode, int64(id))
}

// RemoteSessions counts the replicas other than this store's that hold a
// control channel of node id and beat at or after alive.
func (q queries) RemoteSessions(ctx context.Context, id NodeID, alive time.Time) (int, error) {
	var n int
	err := q.q.QueryRowContext(ctx, `SELECT COUNT(*) FROM node_sessions s JOIN replicas r ON r.id = s.replica
		WHERE s.node_id = ? AND s.replica <> ? AND r.heartbeat >= ?`, id, q.origin, nanos(alive)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("sessions of node %d: %w", id, err)
	}
	return n, nil
}

// Heartbeat records that this store's replica is alive at at.
func (q queries) Heartbeat(ctx context.Context, at time.Time) error {
	_, err := q.q.ExecContext(ctx, `INSERT INTO replicas (id, heartbeat) VALUES (?, ?)
		ON CONFLICT (id) DO UPDATE SET heartbeat = excluded.heartbeat`, q.origin, nanos(at))
	if err != nil {
		return fmt.Errorf("replica heartbeat: %w", err)
	}
	return nil
}

// LeaveReplica forgets this store's replica and its sessions (a clean
// shutdown), appending a change for each node it held.
func (q queries) LeaveReplica(ctx context.Context) error {
	_, err := q.forget(ctx, q.origin)
	return err
}

// SweepReplicas forgets the other replicas that last beat before dead, and
// their sessions, appending a change for each node they held (whose
// presence changed), and returns those nodes.
func (q queries) SweepReplicas(ctx context.Context, dead time.Time) ([]NodeID, error) {
	gone, err := list(ctx, q, "replicas", `SELECT id FROM replicas WHERE heartbeat < ? AND id <> ? ORDER BY id`, scanValue[string], nanos(dead), q.origin)
	if err != nil {
		return nil, err
	}
	var out []NodeID
	for _, r := range gone {
		ids, err := q.forget(ctx, r)
		if err != nil {
			return nil, err
		}
		out = append(out, ids...)
	}
	return out, nil
}

// forget deletes replica and its sessions, appending a change for each
// node it held, and returns those nodes.
func (q queries) forget(ctx context.Context, replica string) ([]NodeID, error) {
	ids, err := list(ctx, q, "sessions", `SELECT node_id FROM node_sessions WHERE replica = ? ORDER BY node_id`, scanValue[NodeID], replica)
	if err != nil {
		return nil, err
	}
	if _, err := q.q.ExecContext(ctx, `DELETE FROM node_sessions WHERE replica = ?`, replica); err != nil {
		return nil, fmt.Errorf("forget replica %s: %w", replica, err)
	}
	if _, err := q.q.ExecContext(ctx, `DELETE FROM replicas WHERE id = ?`, replica); err != nil {
		return nil, fmt.Errorf("forget replica %s: %w", replica, err)
	}
	for _, id := range ids {
		if err := q.appendChange(ctx, ChangeNode, int64(id)); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// TryLease takes or renews the lease name for this store's replica until
// until, if it is free, expired at now, or already this replica's; it
// reports whether this replica holds it.
func (q queries) TryLease(ctx context.Context, name string, now, until time.Time) (bool, error) {
	res, err := q.q.ExecContext(ctx, `INSERT INTO leases (name, holder, expires) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires
		WHERE leases.holder = excluded.holder OR leases.expires < ?`, name, q.origin, nanos(until), nanos(now))
	if err != nil {
		return false, fmt.Errorf("lease %s: %w", name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("lease %s: %w", name, err)
	}
	return n > 0, nil
}

// ReleaseLease gives up the lease name if this store's replica holds it.
func (q queries) ReleaseLease(ctx context.Context, name string) error {
	if _, err := q.q.ExecContext(ctx, `DELETE FROM leases WHERE name = ? AND holder = ?`, name, q.origin); err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}

// LiveSessions returns the nodes that replicas other than this store's,
// beating at or after alive, hold control channels of.
func (q queries) LiveSessions(ctx context.Context, alive time.Time) ([]NodeID, error) {
	return list(ctx, q, "sessions", `SELECT DISTINCT s.node_id FROM node_sessions s JOIN replicas r ON r.id = s.replica
		WHERE s.replica <> ? AND r.heartbeat >= ? ORDER BY s.node_id`, scanValue[NodeID], q.origin, nanos(alive))
}
