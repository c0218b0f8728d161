package registry

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/warrenmesh/warren/coordinator/netmap"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/wire"
)

// withPosture fills nm's attributes from the node's stored ones as they
// count at now, and schedules the node's next posture change.
func (r *Registry) withPosture(nm *netmap.Node, attrs []store.NodeAttr, now time.Time) {
	v := ViewPosture(attrs, now, r.maxAge)
	nm.Attrs, nm.PostureAttrs = v.Counting, v.Held
	r.schedulePosture(store.NodeID(nm.ID()), v.Next)
}

// publishPosture publishes node n again if what its attributes mean now
// differs from what the engine holds (a heartbeat that changes nothing
// costs no delta), and schedules its next posture change either way.
func (r *Registry) publishPosture(ctx context.Context, n *store.Node) {
	attrs, err := r.st.ListNodeAttrs(ctx, n.ID)
	if err != nil {
		r.log.Error("publish posture: load attributes", "node", n.ID, "err", err)
		return
	}
	v := ViewPosture(attrs, r.now(), r.maxAge)
	cur, ok := r.engine.Node(wire.NodeID(n.ID))
	if ok && maps.Equal(cur.Attrs, v.Counting) && slices.Equal(cur.PostureAttrs, v.Held) {
		r.schedulePosture(n.ID, v.Next)
		return
	}
	fresh, err := r.st.GetNode(ctx, n.ID)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			r.log.Error("publish posture: load node", "node", n.ID, "err", err)
		}
		return
	}
	r.publish(ctx, &fresh)
}

// schedulePosture makes node id be published again at next, when one of
// its attributes goes stale or expires (zero: nothing to wait for).
// Its earlier schedule is replaced.
func (r *Registry) schedulePosture(id store.NodeID, next time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t := r.posture[id]; t != nil {
		t.t.Stop()
		delete(r.posture, id)
	}
	if r.closed || next.IsZero() {
		return
	}
	pt := &postureTimer{}
	pt.t = time.AfterFunc(max(next.Sub(r.now()), 0), func() { r.postureDue(id, pt) })
	r.posture[id] = pt
}

// postureTimer is one node's scheduled posture change; its identity tells
// a due callback whether it was replaced meanwhile.
type postureTimer struct{ t *time.Timer }

// postureDue publishes node id as its attributes count now, unless timer
// t was replaced or the registry closed.
func (r *Registry) postureDue(id store.NodeID, t *postureTimer) {
	r.mu.Lock()
	if r.closed || r.posture[id] != t {
		r.mu.Unlock()
		return
	}
	delete(r.posture, id)
	r.inflight.Add(1)
	r.mu.Unlock()
	defer r.inflight.Done()
	ctx := context.Background()
	n, err := r.st.GetNode(ctx, id)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			r.log.Error("posture change: load node", "node", id, "err", err)
		}
		return
	}
	r.publishPosture(ctx, &n)
}
