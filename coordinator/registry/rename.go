package registry

import (
	"context"
	"fmt"
	"strings"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/store"
)

// RenameNode gives node id the name name: a DNS label (lowercase letters,
// digits, inner hyphens, at most 63 characters; upper case is folded)
// that no other node has. The name then stays when the node's hostname
// changes. Who may manage the node may rename it. Peers see the new name
// in their next map.
func (r *Registry) RenameNode(ctx context.Context, a Actor, id store.NodeID, name string) (store.Node, error) {
	name = strings.ToLower(name)
	ev := a.event("node.rename", fmt.Sprintf("node:%d", id), map[string]any{"name": name})
	if !store.ValidNodeName(name) {
		return store.Node{}, r.deny(ctx, ev, fmt.Errorf("%w: %q is not a valid node name: use 1 to 63 letters, digits and inner hyphens (a DNS label, e.g. %q)",
			ErrBadRequest, name, store.DNSLabel(name)))
	}
	var out store.Node
	err := r.commit(ctx, ev, func(tx *audit.Tx) error {
		n, err := tx.GetNode(ctx, id)
		if err != nil {
			return err
		}
		if err := a.mayManage(&n); err != nil {
			return err
		}
		nodes, err := tx.ListNodes(ctx)
		if err != nil {
			return err
		}
		for _, o := range nodes {
			if o.ID != id && o.Name == name {
				return fmt.Errorf("%w: node %d is already called %q", store.ErrConflict, o.ID, name)
			}
		}
		ev.Detail["previous"] = n.Name
		n.Name, n.GivenName = name, true
		out, err = tx.UpdateNode(ctx, n)
		return err
	})
	if err != nil {
		return store.Node{}, err
	}
	r.publish(ctx, &out)
	return out, nil
}

// SetUserRole makes a user an admin or a member (admins only). The user's
// nodes are published again, since rules may name autogroup:admin.
func (r *Registry) SetUserRole(ctx context.Context, a Actor, id store.UserID, role store.Role) (store.User, error) {
	ev := a.event("user.role", fmt.Sprintf("user:%d", id), map[string]any{"role": role})
	err := a.admin()
	if err == nil && role != store.RoleAdmin && role != store.RoleMember {
		err = fmt.Errorf("%w: role %q: want %s or %s", ErrBadRequest, role, store.RoleAdmin, store.RoleMember)
	}
	if err != nil {
		return store.User{}, r.deny(ctx, ev, err)
	}
	var u store.User
	err = r.commit(ctx, ev, func(tx *audit.Tx) error {
		var err error
		if u, err = tx.GetUser(ctx, id); err != nil {
			return err
		}
		ev.Detail["previous"] = u.Role
		u.Role = role
		return tx.UpdateUser(ctx, u)
	})
	if err != nil {
		return store.User{}, err
	}
	return u, r.republishUser(ctx, id)
}
