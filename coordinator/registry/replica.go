package registry

import (
	"context"
	"errors"

	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/wire"
)

// What another replica sharing the store changed (package
// coordinator/replica's follower calls these): the registry reads the
// entity again and puts it in the engine exactly as after a change of its
// own. The other replica wrote the store; nothing here writes it.

// errElsewhere stops an ephemeral node's deletion: another replica holds
// its control channel.
var errElsewhere = errors.New("node connected to another replica")

// Refresh publishes node id as stored (or removes it, deleted), online if
// this replica or another (remoteOnline) holds its control channel. An
// ephemeral node online nowhere waits out the grace period again.
func (r *Registry) Refresh(ctx context.Context, id store.NodeID, remoteOnline bool) {
	r.mu.Lock()
	if remoteOnline {
		r.remote[id] = true
		if t := r.reapers[id]; t != nil {
			t.Stop()
			delete(r.reapers, id)
		}
	} else {
		delete(r.remote, id)
	}
	r.mu.Unlock()
	n, err := r.st.GetNode(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		r.mu.Lock()
		delete(r.remote, id)
		r.mu.Unlock()
		r.engine.Remove(wire.NodeID(id), ErrNodeDeleted)
		return
	}
	if err != nil {
		r.log.Error("refresh node from another replica", "node", id, "err", err)
		return
	}
	r.publish(ctx, &n)
	if n.Ephemeral && !remoteOnline {
		r.scheduleReap(id)
	}
}

// RefreshUser publishes every node user id registered again (its nodes
// were removed by their own changes if it was deleted).
func (r *Registry) RefreshUser(ctx context.Context, id store.UserID) {
	if err := r.republishUser(ctx, id); err != nil {
		r.log.Error("refresh user from another replica", "user", id, "err", err)
	}
}

// Resync publishes every stored node again and removes from the engine
// those no longer stored: for a replica that lost track of the change
// feed.
func (r *Registry) Resync(ctx context.Context) {
	nodes, err := r.st.ListNodes(ctx)
	if err != nil {
		r.log.Error("resync nodes", "err", err)
		return
	}
	stored := make(map[wire.NodeID]bool, len(nodes))
	for i := range nodes {
		stored[wire.NodeID(nodes[i].ID)] = true
		r.publish(ctx, &nodes[i])
	}
	var gone []wire.NodeID
	r.engine.Presence(func(id wire.NodeID, _ bool) {
		if !stored[id] {
			gone = append(gone, id)
		}
	})
	for _, id := range gone {
		r.engine.Remove(id, ErrNodeDeleted)
	}
}
