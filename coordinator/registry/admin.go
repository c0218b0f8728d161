package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/auth"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/wire"
)

// ErrNodeDeleted closes the control channel of a node an admin deleted.
var ErrNodeDeleted = &wire.Error{Code: wire.CodeNodeRemoved, Message: "this node was deleted from the mesh: run warren up to join again"}

// ErrForbidden is returned when an actor may not do what it asked.
var ErrForbidden = errors.New("forbidden")

// Actor is who asks for an admin change; it appears in the audit log.
type Actor struct {
	Name   string // "user:ann@example.com", "local:root", …
	UserID store.UserID
	Admin  bool
	Remote string
	// Integration is the name of the integration API key acting (see
	// store.APIKeyIntegration); such an actor may only read nodes'
	// attributes and set custom: ones.
	Integration string
}

// may reports whether a may manage something owned by owner.
func (a Actor) may(owner store.UserID) error {
	if a.Admin || (owner != 0 && owner == a.UserID) {
		return nil
	}
	return fmt.Errorf("%w: %s may only manage its own nodes", ErrForbidden, a.Name)
}

// mayManage reports whether a may change or delete node n. A tagged node
// is owned by its tags, not by the user who registered it: only admins
// manage it.
func (a Actor) mayManage(n *store.Node) error {
	if n.Tagged() && !a.Admin {
		return fmt.Errorf("%w: node %d is owned by its tags (%v); only admins manage tagged nodes", ErrForbidden, n.ID, n.Tags)
	}
	return a.may(n.UserID)
}

// event returns the audit event of a's action on target.
func (a Actor) event(action, target string, detail map[string]any) audit.Event {
	if detail == nil {
		detail = map[string]any{}
	}
	return audit.Event{Actor: a.Name, Action: action, Target: target, Remote: a.Remote, Detail: detail}
}

// commit makes one audited change: fn runs in a store transaction and, if
// it succeeds, ev (outcome ok, with whatever fn added to its Detail)
// commits in the same transaction. If fn fails nothing is kept and the
// refusal or failure is audited on its own. It returns fn's error.
func (r *Registry) commit(ctx context.Context, ev audit.Event, fn func(tx *audit.Tx) error) error {
	if ev.Detail == nil {
		ev.Detail = map[string]any{}
	}
	err := r.audit.Commit(ctx, func(tx *audit.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		tx.Record(ev)
		return nil
	})
	if err != nil {
		r.refused(ctx, ev, err)
	}
	return err
}

// refused audits a change that was not made.
func (r *Registry) refused(ctx context.Context, ev audit.Event, err error) {
	ev.Outcome = audit.Failed
	if isClientError(err) || errors.Is(err, ErrForbidden) || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		ev.Outcome = audit.Denied
	}
	detail := make(map[string]any, len(ev.Detail)+1)
	for k, v := range ev.Detail {
		detail[k] = v
	}
	detail["error"] = err.Error()
	ev.Detail = detail
	_ = r.audit.Record(ctx, ev)
}

// deny audits a request refused before it reached the store and returns
// err.
func (r *Registry) deny(ctx context.Context, ev audit.Event, err error) error {
	r.refused(ctx, ev, err)
	return err
}

// NodeInfo is a stored node with its live state.
type NodeInfo struct {
	store.Node
	User    string
	Online  bool
	Expired bool
}

// ListNodes returns the nodes a may see: all for admins, its own otherwise.
func (r *Registry) ListNodes(ctx context.Context, a Actor) ([]NodeInfo, error) {
	nodes, err := r.st.ListNodes(ctx)
	if err != nil {
		return nil, err
	}
	users, err := r.usersByID(ctx)
	if err != nil {
		return nil, err
	}
	now := r.now()
	out := make([]NodeInfo, 0, len(nodes))
	for _, n := range nodes {
		if a.may(n.UserID) != nil {
			continue
		}
		r.mu.Lock()
		online := r.conns[n.ID] > 0
		r.mu.Unlock()
		out = append(out, NodeInfo{Node: n, User: users[n.UserID].Name, Online: online, Expired: n.Expired(now)})
	}
	return out, nil
}

// changeNode loads node id, checks a may manage it, applies fn, stores and
// publishes the result.
func (r *Registry) changeNode(ctx context.Context, a Actor, id store.NodeID, action string, detail map[string]any, fn func(*store.Node) error) (store.Node, error) {
	var out store.Node
	err := r.commit(ctx, a.event(action, fmt.Sprintf("node:%d", id), detail), func(tx *audit.Tx) error {
		n, err := tx.GetNode(ctx, id)
		if err != nil {
			return err
		}
		if err := a.mayManage(&n); err != nil {
			return err
		}
		if err := fn(&n); err != nil {
			return err
		}
		out, err = tx.UpdateNode(ctx, n)
		return err
	})
	if err != nil {
		return store.Node{}, err
	}
	r.publish(ctx, &out)
	return out, nil
}

// ExpireNode expires a node's key now: it loses every peer until it
// re-authenticates.
func (r *Registry) ExpireNode(ctx context.Context, a Actor, id store.NodeID) (store.Node, error) {
	return r.changeNode(ctx, a, id, "node.expire", nil, func(n *store.Node) error {
		n.KeyExpiry = r.now()
		return nil
	})
}

// ApproveNode lets a pending node (device approval) into the mesh. Only
// admins approve: a member approving their own device would defeat it.
func (r *Registry) ApproveNode(ctx context.Context, a Actor, id store.NodeID) (store.Node, error) {
	if err := a.admin(); err != nil {
		return store.Node{}, r.deny(ctx, a.event("node.approve", fmt.Sprintf("node:%d", id), nil), err)
	}
	return r.changeNode(ctx, a, id, "node.approve", nil, func(n *store.Node) error {
		n.Pending = false
		return nil
	})
}

// Bounds of a node's key lifetime override (SetKeyLifetime).
const (
	MinKeyLifetime = time.Minute
	MaxKeyLifetime = 10 * 365 * 24 * time.Hour
)

// SetKeyLifetime overrides how long node id's keys last (admins only: a
// member lengthening their own device's key would defeat the policy).
// lifetime 0 returns the node to the coordinator's KeyExpiry, negative
// (store.KeyLifetimeNever) makes its key never expire, and a positive
// lifetime from MinKeyLifetime to MaxKeyLifetime is used as is, to the
// second.
//
// The node's current key then expires lifetime from now (not from when it
// last authenticated), so a shorter lifetime takes effect at once. A key
// that has already expired stays expired: the node re-authenticates and
// its new key gets the new lifetime. Tagged nodes never expire; their
// override is kept for when their tags are removed.
func (r *Registry) SetKeyLifetime(ctx context.Context, a Actor, id store.NodeID, lifetime time.Duration) (store.Node, error) {
	detail := map[string]any{"lifetime": FormatKeyLifetime(lifetime)}
	err := a.admin()
	if err == nil && lifetime > 0 && (lifetime < MinKeyLifetime || lifetime > MaxKeyLifetime) {
		err = fmt.Errorf("%w: key lifetime %v is outside %v to %v (use never for keys that do not expire, default for the coordinator's --key-expiry)",
			ErrBadRequest, lifetime, MinKeyLifetime, MaxKeyLifetime)
	}
	if err != nil {
		return store.Node{}, r.deny(ctx, a.event("node.key-lifetime", fmt.Sprintf("node:%d", id), detail), err)
	}
	if lifetime < 0 {
		lifetime = store.KeyLifetimeNever
	} else {
		lifetime = lifetime.Truncate(time.Second) // as the store keeps it
	}
	return r.changeNode(ctx, a, id, "node.key-lifetime", detail, func(n *store.Node) error {
		detail["previous"] = FormatKeyLifetime(n.KeyLifetime)
		n.KeyLifetime = lifetime
		if !n.Expired(r.now()) {
			n.KeyExpiry = r.expiryFor(n)
		}
		return nil
	})
}

// FormatKeyLifetime writes a node's key lifetime override as people and
// the audit log read it: "default" (0), "never" (negative) or a duration
// such as "720h0m0s".
func FormatKeyLifetime(d time.Duration) string {
	switch {
	case d == 0:
		return "default"
	case d < 0:
		return "never"
	}
	return d.String()
}

// Logout is a node's own request to leave: its key expires now (so it
// loses every peer and needs a key or login to come back, keeping its
// address), or, for an ephemeral node, it is deleted.
func (r *Registry) Logout(ctx context.Context, id store.NodeID) error {
	self := Actor{Name: fmt.Sprintf("node:%d", id), Admin: true, Remote: "control"}
	n, err := r.st.GetNode(ctx, id)
	if err != nil {
		return err
	}
	if n.Ephemeral {
		return r.DeleteNode(ctx, self, id)
	}
	_, err = r.changeNode(ctx, self, id, "node.logout", nil, func(n *store.Node) error {
		n.KeyExpiry = r.now()
		return nil
	})
	return err
}

// SetTags replaces a node's tags (admins only; each tag must be defined in
// the policy's tagOwners). Tagged nodes never expire; a node whose tags
// are cleared gets a fresh user-node expiry.
func (r *Registry) SetTags(ctx context.Context, a Actor, id store.NodeID, tags []string) (store.Node, error) {
	detail := map[string]any{"tags": tags}
	return r.changeNode(ctx, a, id, "node.tag", detail, func(n *store.Node) error {
		if !a.Admin {
			return fmt.Errorf("%w: only admins may tag nodes", ErrForbidden)
		}
		for _, t := range tags {
			if !ValidTag(t) {
				return fmt.Errorf("%w: bad tag %q", ErrBadRequest, t)
			}
		}
		if err := r.tagsDefined(tags); err != nil {
			return err
		}
		wasTagged := n.Tagged()
		n.Tags = slices.Clone(tags)
		if n.Tagged() != wasTagged {
			n.KeyExpiry = r.expiryFor(n)
		}
		return nil
	})
}

// DeleteNode removes a node: peers forget it at once and its control
// channel is closed.
func (r *Registry) DeleteNode(ctx context.Context, a Actor, id store.NodeID) error {
	err := r.commit(ctx, a.event("node.delete", fmt.Sprintf("node:%d", id), nil), func(tx *audit.Tx) error {
		n, err := tx.GetNode(ctx, id)
		if err != nil {
			return err
		}
		if err := a.mayManage(&n); err != nil {
			return err
		}
		return tx.DeleteNode(ctx, id)
	})
	if err != nil {
		return err
	}
	r.engine.Remove(wire.NodeID(id), ErrNodeDeleted)
	return nil
}

// CreateUser adds a user (admins only).
func (r *Registry) CreateUser(ctx context.Context, a Actor, u store.User) (store.User, error) {
	ev := a.event("user.create", "user:"+u.Name, map[string]any{"role": u.Role, "groups": u.Groups})
	err := a.admin()
	if err == nil {
		err = checkUser(&u)
	}
	if err != nil {
		return store.User{}, r.deny(ctx, ev, err)
	}
	u.Created = r.now()
	var out store.User
	err = r.commit(ctx, ev, func(tx *audit.Tx) error {
		var err error
		out, err = tx.CreateUser(ctx, u)
		ev.Detail["id"] = out.ID
		return err
	})
	return out, err
}

func (a Actor) admin() error {
	if !a.Admin {
		return fmt.Errorf("%w: %s is not an admin", ErrForbidden, a.Name)
	}
	return nil
}

func checkUser(u *store.User) error {
	if u.Name == "" || len(u.Name) > 255 {
		return fmt.Errorf("%w: user name must be 1 to 255 bytes", ErrBadRequest)
	}
	if u.Role == "" {
		u.Role = store.RoleMember
	}
	if u.Role != store.RoleMember && u.Role != store.RoleAdmin {
		return fmt.Errorf("%w: role must be %q or %q", ErrBadRequest, store.RoleMember, store.RoleAdmin)
	}
	return nil
}

// ListUsers returns all users (admins) or the actor itself.
func (r *Registry) ListUsers(ctx context.Context, a Actor) ([]store.User, error) {
	users, err := r.st.ListUsers(ctx)
	if err != nil || a.Admin {
		return users, err
	}
	return slices.DeleteFunc(users, func(u store.User) bool { return u.ID != a.UserID }), nil
}

// SetUserDisabled disables or enables a user. A disabled user's nodes drop
// out of every netmap at once; tagged nodes it registered keep working.
// Disabling also revokes every pre-auth key the user created or owns, in
// the same transaction: an offboarded user's keys register nothing more.
func (r *Registry) SetUserDisabled(ctx context.Context, a Actor, id store.UserID, disabled bool) (store.User, error) {
	action := "user.enable"
	if disabled {
		action = "user.disable"
	}
	ev := a.event(action, fmt.Sprintf("user:%d", id), nil)
	if err := a.admin(); err != nil {
		return store.User{}, r.deny(ctx, ev, err)
	}
	var u store.User
	err := r.commit(ctx, ev, func(tx *audit.Tx) error {
		var err error
		if u, err = tx.GetUser(ctx, id); err != nil {
			return err
		}
		u.Disabled = disabled
		if err := tx.UpdateUser(ctx, u); err != nil {
			return err
		}
		if disabled {
			return r.revokeKeysOf(ctx, tx, a, id, "user disabled")
		}
		return nil
	})
	if err != nil {
		return store.User{}, err
	}
	return u, r.republishUser(ctx, id)
}

// revokeKeysOf revokes, inside tx, every usable pre-auth key user id
// created or owns, recording one event per key.
func (r *Registry) revokeKeysOf(ctx context.Context, tx *audit.Tx, a Actor, id store.UserID, reason string) error {
	keys, err := tx.ListAuthKeys(ctx)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if k.Revoked || (k.CreatorID != id && k.UserID != id) {
			continue
		}
		k.Revoked = true
		if err := tx.UpdateAuthKey(ctx, k); err != nil {
			return err
		}
		tx.Record(a.event("authkey.revoke", "authkey:"+k.Prefix, map[string]any{"id": k.ID, "reason": reason}))
	}
	return nil
}

// DeleteUser deletes a user, its nodes and keys; tagged nodes it registered
// are kept, and keys it created for other users are revoked.
func (r *Registry) DeleteUser(ctx context.Context, a Actor, id store.UserID) error {
	ev := a.event("user.delete", fmt.Sprintf("user:%d", id), nil)
	if err := a.admin(); err != nil {
		return r.deny(ctx, ev, err)
	}
	var removed []store.NodeID
	err := r.commit(ctx, ev, func(tx *audit.Tx) error {
		nodes, err := tx.ListNodes(ctx)
		if err != nil {
			return err
		}
		removed = removed[:0]
		for _, n := range nodes {
			if n.UserID == id && !n.Tagged() {
				removed = append(removed, n.ID)
			}
		}
		if err := r.revokeKeysOf(ctx, tx, a, id, "creator deleted"); err != nil {
			return err
		}
		return tx.DeleteUser(ctx, id)
	})
	if err != nil {
		return err
	}
	for _, n := range removed {
		r.engine.Remove(wire.NodeID(n), ErrNodeDeleted)
	}
	return r.republishUser(ctx, id)
}

// republishUser pushes every remaining node registered by user id.
func (r *Registry) republishUser(ctx context.Context, id store.UserID) error {
	nodes, err := r.st.ListNodes(ctx)
	if err != nil {
		return err
	}
	for i := range nodes {
		if nodes[i].UserID == id {
			r.publish(ctx, &nodes[i])
		}
	}
	return nil
}

// AuthKeyRequest describes a pre-auth key to create.
type AuthKeyRequest struct {
	UserID    store.UserID // owner; 0 means the actor
	Reusable  bool
	Ephemeral bool
	Tags      []string
	TTL       time.Duration // 0: DefaultSingleUseKeyTTL for a single-use key, never for a reusable one
}

// DefaultSingleUseKeyTTL is how long a single-use pre-auth key lasts when
// its creator names no TTL: it is meant for one machine joining now, and
// one left lying around should not work for ever.
const DefaultSingleUseKeyTTL = time.Hour

// CreateAuthKey creates a pre-auth key and returns it with its plaintext,
// which is shown this once and never stored. Tags must be defined in the
// policy's tagOwners, and a member must own each of them; the key records
// its creator, whose right to apply the tags is checked again whenever
// the key is used.
func (r *Registry) CreateAuthKey(ctx context.Context, a Actor, req AuthKeyRequest) (store.AuthKey, string, error) {
	if req.UserID == 0 {
		req.UserID = a.UserID
	}
	plain, hash, display := auth.NewSecret(auth.AuthKeyPrefix)
	k := store.AuthKey{Prefix: display, Hash: hash, UserID: req.UserID, CreatorID: a.UserID, Reusable: req.Reusable,
		Ephemeral: req.Ephemeral, Tags: req.Tags, Created: r.now()}
	if req.TTL == 0 && !req.Reusable {
		req.TTL = DefaultSingleUseKeyTTL
	}
	if req.TTL > 0 {
		k.Expiration = k.Created.Add(req.TTL)
	}
	ev := a.event("authkey.create", "authkey:"+display,
		map[string]any{"key": display, "user": req.UserID, "reusable": req.Reusable, "ephemeral": req.Ephemeral, "tags": req.Tags})
	err := a.may(req.UserID)
	for _, t := range req.Tags {
		if err == nil && !ValidTag(t) {
			err = fmt.Errorf("%w: bad tag %q", ErrBadRequest, t)
		}
	}
	if err == nil && req.UserID == 0 {
		err = fmt.Errorf("%w: a pre-auth key needs an owning user (--user)", ErrBadRequest)
	}
	if err != nil {
		return store.AuthKey{}, "", r.deny(ctx, ev, err)
	}
	err = r.commit(ctx, ev, func(tx *audit.Tx) error {
		if len(req.Tags) > 0 {
			if err := r.mayApplyTags(ctx, tx, a.UserID, a.Name, req.Tags); err != nil {
				return err
			}
		}
		if _, err := tx.GetUser(ctx, req.UserID); err != nil {
			return err
		}
		var err error
		k, err = tx.CreateAuthKey(ctx, k)
		ev.Detail["id"] = k.ID
		return err
	})
	if err != nil {
		return store.AuthKey{}, "", err
	}
	return k, plain, nil
}

// ListAuthKeys returns the pre-auth keys a may see (hashes included, never
// plaintext).
func (r *Registry) ListAuthKeys(ctx context.Context, a Actor) ([]store.AuthKey, error) {
	keys, err := r.st.ListAuthKeys(ctx)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(keys, func(k store.AuthKey) bool { return a.may(k.UserID) != nil }), nil
}

// RevokeAuthKey revokes (expire=false) or expires now (expire=true) a
// pre-auth key. Nodes it registered keep working.
func (r *Registry) RevokeAuthKey(ctx context.Context, a Actor, id store.AuthKeyID, expire bool) (store.AuthKey, error) {
	action := "authkey.revoke"
	if expire {
		action = "authkey.expire"
	}
	ev := a.event(action, fmt.Sprintf("authkey:%d", id), map[string]any{"id": id})
	var k store.AuthKey
	err := r.commit(ctx, ev, func(tx *audit.Tx) error {
		var err error
		if k, err = tx.GetAuthKey(ctx, id); err != nil {
			return err
		}
		if err := a.may(k.UserID); err != nil {
			return err
		}
		ev.Detail["key"] = k.Prefix
		if expire {
			k.Expiration = r.now()
		} else {
			k.Revoked = true
		}
		return tx.UpdateAuthKey(ctx, k)
	})
	return k, err
}

// CreateAPIKey creates an API key for user (admins may create for anyone,
// members for themselves) and returns its plaintext once.
func (r *Registry) CreateAPIKey(ctx context.Context, a Actor, user store.UserID, ttl time.Duration) (store.APIKey, string, error) {
	if user == 0 {
		user = a.UserID
	}
	plain, hash, display := auth.NewSecret(auth.APIKeyPrefix)
	k := store.APIKey{Prefix: display, Hash: hash, UserID: user, Created: r.now()}
	if ttl > 0 {
		k.Expiration = k.Created.Add(ttl)
	}
	ev := a.event("apikey.create", "apikey:"+display, map[string]any{"user": user})
	if err := a.may(user); err != nil {
		return store.APIKey{}, "", r.deny(ctx, ev, err)
	}
	err := r.commit(ctx, ev, func(tx *audit.Tx) error {
		var err error
		k, err = tx.CreateAPIKey(ctx, k)
		return err
	})
	if err != nil {
		return store.APIKey{}, "", err
	}
	return k, plain, nil
}

// ListAPIKeys returns the API keys a may see.
func (r *Registry) ListAPIKeys(ctx context.Context, a Actor) ([]store.APIKey, error) {
	keys, err := r.st.ListAPIKeys(ctx)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(keys, func(k store.APIKey) bool { return a.may(k.UserID) != nil }), nil
}

// NoteAPIKeyUse records that API key id authenticated a request at: its
// LastUsed. This is bookkeeping, not a change anyone decided, so it is not
// audited; the key is read again inside the transaction, so that a
// revocation made meanwhile is never written back over.
func (r *Registry) NoteAPIKeyUse(ctx context.Context, id store.APIKeyID, at time.Time) error {
	return r.st.Tx(ctx, func(q store.Queries) error {
		k, err := q.GetAPIKey(ctx, id)
		if err != nil {
			return err
		}
		k.LastUsed = at
		return q.UpdateAPIKey(ctx, k)
	})
}
