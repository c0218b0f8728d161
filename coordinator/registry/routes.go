package registry

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/policy"
	"github.com/warrenmesh/warren/internal/routes"
	"github.com/warrenmesh/warren/internal/wire"
)

// AdvertiseRoutes records the subnet and exit-node routes node id
// advertises, as its control channel sent them (the node's whole list;
// none clears it). Routes that fail routes.Check are refused, the whole
// list with them, and the refusal is audited. The policy's autoApprovers
// approve what they cover, in the same audited transaction; everything
// else waits for an admin (ApproveRoutes). A list equal to the stored one
// changes nothing and is not audited, so reconnecting costs nothing.
func (r *Registry) AdvertiseRoutes(ctx context.Context, id store.NodeID, advertised []netip.Prefix, remote string) error {
	cur, err := r.st.GetNode(ctx, id)
	if err != nil {
		return err
	}
	ev := audit.Event{Actor: "node:" + cur.MachineKey.String(), Action: "node.routes.advertise", Target: fmt.Sprintf("node:%d", id), Remote: remote,
		Detail: map[string]any{"routes": audit.Truncate(routes.Format(advertised), 4096)}}
	checked, err := routes.Check(advertised)
	if err != nil {
		return r.deny(ctx, ev, fmt.Errorf("%w: %w", ErrBadRequest, err))
	}
	if slices.Equal(cur.AdvertisedRoutes, checked) {
		return nil
	}
	p := r.policyNow()
	var out store.Node
	err = r.commit(ctx, ev, func(tx *audit.Tx) error {
		n, err := tx.GetNode(ctx, id)
		if err != nil {
			return err
		}
		ev.Detail["previous"] = routes.Format(n.AdvertisedRoutes)
		n.AdvertisedRoutes = checked
		if auto := r.autoApproved(ctx, tx, p, &n); len(auto) > 0 {
			ev.Detail["autoApproved"] = routes.Format(auto)
		}
		out, err = tx.UpdateNode(ctx, n)
		return err
	})
	if err != nil {
		return err
	}
	r.publish(ctx, &out)
	return nil
}

// autoApproved adds to n's approved routes the advertised ones the
// policy p approves for n's owner as things are now, and returns them.
// The exit-node pair is approved together or not at all.
func (r *Registry) autoApproved(ctx context.Context, q store.Queries, p *policy.Policy, n *store.Node) []netip.Prefix {
	if p == nil || p.AutoApprovers() == nil {
		return nil
	}
	pn := policy.Node{ID: wire.NodeID(n.ID), Tags: n.Tags}
	if !n.Tagged() {
		u, err := q.GetUser(ctx, n.UserID)
		if err != nil || u.Disabled {
			return nil
		}
		pn.User, pn.Groups, pn.Admin = u.Name, u.Groups, u.Role == store.RoleAdmin
	}
	var added []netip.Prefix
	for _, rt := range n.AdvertisedRoutes {
		if !slices.Contains(n.ApprovedRoutes, rt) && p.AutoApproves(&pn, rt) {
			added = append(added, rt)
		}
	}
	if len(added) == 0 {
		return nil
	}
	n.ApprovedRoutes = append(slices.Clone(n.ApprovedRoutes), added...)
	routes.Sort(n.ApprovedRoutes)
	return added
}

// AutoApprove applies policy p's autoApprovers to every node's advertised
// routes that are not approved yet (after a policy change). Routes
// approved before stay approved when an approver is removed, as in
// Tailscale: an admin disables them (DisableRoutes). Each node changed is
// audited on its own, with the policy as actor.
func (r *Registry) AutoApprove(ctx context.Context, p *policy.Policy) {
	if p == nil || p.AutoApprovers() == nil {
		return
	}
	nodes, err := r.st.ListNodes(ctx)
	if err != nil {
		r.log.Error("auto-approve routes: list nodes", "err", err)
		return
	}
	for _, n := range nodes {
		if len(routes.Enabled(n.AdvertisedRoutes, n.ApprovedRoutes)) == len(n.AdvertisedRoutes) {
			continue
		}
		ev := audit.Event{Actor: "policy", Action: "node.routes.approve", Target: fmt.Sprintf("node:%d", n.ID), Detail: map[string]any{}}
		var out store.Node
		changed := false
		err := r.commit(ctx, ev, func(tx *audit.Tx) error {
			cur, err := tx.GetNode(ctx, n.ID)
			if err != nil {
				return err
			}
			auto := r.autoApproved(ctx, tx, p, &cur)
			if len(auto) == 0 {
				return errNothingToDo
			}
			ev.Detail["routes"], ev.Detail["autoApproved"] = routes.Format(auto), true
			changed = true
			out, err = tx.UpdateNode(ctx, cur)
			return err
		})
		if err != nil && !errors.Is(err, errNothingToDo) && !errors.Is(err, store.ErrNotFound) {
			r.log.Error("auto-approve routes", "node", n.ID, "err", err)
		}
		if err == nil && changed {
			r.publish(ctx, &out)
		}
	}
}

// errNothingToDo rolls back a transaction that found nothing to change.
var errNothingToDo = errors.New("nothing to do")

// ApproveRoutes approves routes of node id (admins only: a member
// approving their own laptop's routes would defeat approval). Each must
// be one the node advertises now; "the exit node" is both default
// routes, and approving one of them approves the pair. The node serves
// them from its next map.
func (r *Registry) ApproveRoutes(ctx context.Context, a Actor, id store.NodeID, approve []netip.Prefix) (store.Node, error) {
	return r.changeRoutes(ctx, a, id, "node.routes.approve", approve, func(n *store.Node, want []netip.Prefix) error {
		for _, p := range want {
			if !slices.Contains(n.AdvertisedRoutes, p) {
				return fmt.Errorf("%w: node %d does not advertise %s (it advertises: %s)", ErrBadRequest, n.ID, p, orNone(n.AdvertisedRoutes))
			}
		}
		n.ApprovedRoutes = append(slices.Clone(n.ApprovedRoutes), want...)
		return nil
	})
}

// DisableRoutes withdraws approval of routes of node id (admins only);
// the node stops serving them from its next map. Each must be approved
// now; as with ApproveRoutes, either default route names the exit-node
// pair.
func (r *Registry) DisableRoutes(ctx context.Context, a Actor, id store.NodeID, disable []netip.Prefix) (store.Node, error) {
	return r.changeRoutes(ctx, a, id, "node.routes.disable", disable, func(n *store.Node, want []netip.Prefix) error {
		for _, p := range want {
			if !slices.Contains(n.ApprovedRoutes, p) {
				return fmt.Errorf("%w: %s is not approved on node %d (approved: %s)", ErrBadRequest, p, n.ID, orNone(n.ApprovedRoutes))
			}
		}
		n.ApprovedRoutes = slices.DeleteFunc(slices.Clone(n.ApprovedRoutes), func(p netip.Prefix) bool { return slices.Contains(want, p) })
		return nil
	})
}

// changeRoutes is ApproveRoutes and DisableRoutes: it checks the actor and
// the prefixes, then applies fn to the node in one audited transaction.
func (r *Registry) changeRoutes(ctx context.Context, a Actor, id store.NodeID, action string, ps []netip.Prefix,
	fn func(n *store.Node, want []netip.Prefix) error) (store.Node, error) {
	want := slices.Clone(ps)
	if slices.ContainsFunc(want, routes.IsExit) {
		want = append(want, routes.ExitV4, routes.ExitV6)
	}
	routes.Sort(want)
	want = slices.Compact(want)
	detail := map[string]any{"routes": routes.Format(want)}
	err := a.admin()
	if err == nil && len(want) == 0 {
		err = fmt.Errorf("%w: name at least one route", ErrBadRequest)
	}
	for _, p := range want {
		if err == nil && (!p.IsValid() || p.Masked() != p) {
			err = fmt.Errorf("%w: %s is not a route (a prefix with no host bits set, e.g. 10.20.0.0/24)", ErrBadRequest, p)
		}
	}
	if err != nil {
		return store.Node{}, r.deny(ctx, a.event(action, fmt.Sprintf("node:%d", id), detail), err)
	}
	return r.changeNode(ctx, a, id, action, detail, func(n *store.Node) error {
		detail["previous"] = routes.Format(n.ApprovedRoutes)
		if err := fn(n, want); err != nil {
			return err
		}
		routes.Sort(n.ApprovedRoutes)
		n.ApprovedRoutes = slices.Compact(n.ApprovedRoutes)
		return nil
	})
}

func orNone(ps []netip.Prefix) string {
	if len(ps) == 0 {
		return "none"
	}
	return routes.Format(ps)
}
