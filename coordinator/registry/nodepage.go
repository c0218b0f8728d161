package registry

import (
	"context"

	"github.com/warrenmesh/warren/coordinator/store"
)

// ListNodePage returns one page of the nodes a may see (all for admins,
// its own otherwise) that f selects, ordered by name, and how many it
// selects in all: ListNodes a page at a time, for listings of many
// nodes (the web console's nodes page).
func (r *Registry) ListNodePage(ctx context.Context, a Actor, f store.NodePageFilter) ([]NodeInfo, int, error) {
	if !a.Admin {
		f.User = a.UserID
		if f.User == 0 {
			return nil, 0, nil // an actor with no user owns no nodes
		}
	}
	nodes, total, err := r.st.ListNodePage(ctx, f)
	if err != nil {
		return nil, 0, err
	}
	users, err := r.usersByID(ctx)
	if err != nil {
		return nil, 0, err
	}
	now := r.now()
	out := make([]NodeInfo, 0, len(nodes))
	r.mu.Lock()
	for _, n := range nodes {
		out = append(out, NodeInfo{Node: n, User: users[n.UserID].Name, Online: r.conns[n.ID] > 0, Expired: n.Expired(now)})
	}
	r.mu.Unlock()
	return out, total, nil
}
