package registry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/auth"
	"github.com/warrenmesh/warren/coordinator/login"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/wire"
)

// Registration errors beyond those of package auth.
var (
	ErrBadRequest    = errors.New("bad registration request")
	ErrNodeKeyInUse  = errors.New("node key already belongs to another machine: generate a new node key")
	ErrTagNotGranted = errors.New("tag not granted by the pre-auth key")
	ErrNeedAuth      = errors.New("node key changed or node unknown: authenticate with --auth-key or interactive login")
	ErrLoginFailed   = errors.New("login failed")
)

var tagPattern = regexp.MustCompile(`^tag:[a-z0-9][a-z0-9-]{0,62}$`)

// ValidTag reports whether t is a well-formed tag ("tag:name").
func ValidTag(t string) bool { return tagPattern.MatchString(t) }

// Limits on what a node may send.
const (
	maxHostname  = 255
	maxTags      = 32
	maxEndpoints = 32
)

func checkRequest(req *wire.RegisterRequest) error {
	switch {
	case req.NodeKey.IsZero():
		return fmt.Errorf("%w: missing node key", ErrBadRequest)
	case req.DiscoKey.IsZero():
		return fmt.Errorf("%w: missing disco key", ErrBadRequest)
	case req.Hostname == "" || len(req.Hostname) > maxHostname:
		return fmt.Errorf("%w: hostname must be 1 to %d bytes", ErrBadRequest, maxHostname)
	case len(req.Tags) > maxTags:
		return fmt.Errorf("%w: at most %d tags", ErrBadRequest, maxTags)
	}
	for _, r := range req.Hostname {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%w: hostname has a non-printable character", ErrBadRequest)
		}
	}
	for _, t := range req.Tags {
		if !ValidTag(t) {
			return fmt.Errorf("%w: bad tag %q (want tag:name, lowercase letters, digits, '-')", ErrBadRequest, t)
		}
	}
	return nil
}

// Register binds machine and the request's node key to a user or tags and
// returns the stored node. A known machine that presents its current node
// key is simply let back in; anything else needs a valid pre-auth key (or,
// in Follow, an interactive login). The node and its audit event commit in
// one transaction; a rejected request changes nothing and is audited.
func (r *Registry) Register(ctx context.Context, machine key.MachinePublic, req *wire.RegisterRequest, remote string) (store.Node, error) {
	ev := audit.Event{Actor: "node:" + machine.String(), Action: "node.register", Remote: remote,
		Detail: map[string]any{"hostname": req.Hostname, "nodeKey": req.NodeKey.String()}}
	var known bool
	n, err := r.register(ctx, machine, req, remote, &ev, &known)
	var lr *LoginRequired
	switch {
	case errors.As(err, &lr) && known:
		// A registered machine signs in again; nothing is stored yet.
		ev.Outcome = audit.OK
		_ = r.audit.Record(ctx, ev)
		return store.Node{}, err
	case errors.As(err, &lr):
		// An unknown machine: who it is becomes known (and audited) when
		// the sign-in completes.
		return store.Node{}, err
	case err != nil && !known:
		// Neither the machine nor the key is known: anyone can send this
		// as fast as they can handshake, so it is counted, not stored.
		r.failures.Record("node.register", remote, err.Error())
		return store.Node{}, err
	case err != nil:
		r.refused(ctx, ev, err)
		return store.Node{}, err
	}
	r.publish(ctx, &n)
	return n, nil
}

// LoginRequired is the answer to a registration without a pre-auth key
// when interactive login is on: the user must sign in at URL, and the
// node then asks again with the URL as Followup.
type LoginRequired struct{ URL string }

func (e *LoginRequired) Error() string { return "sign in at " + e.URL }

func isClientError(err error) bool {
	var lr *LoginRequired
	if errors.As(err, &lr) {
		return true
	}
	for _, e := range []error{ErrLoginFailed, ErrBadRequest, ErrNodeKeyInUse, ErrDeviceOwned, ErrTagNotGranted, ErrTagNotOwned, ErrNeedAuth,
		auth.ErrUnknownKey, auth.ErrKeyExpired, auth.ErrKeyRevoked, auth.ErrKeyUsed, login.ErrNoLogin, login.ErrRefused, login.ErrTooManyLogins} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// commitNode runs fn, which stores a node, in one transaction with ev,
// whose target becomes the stored node.
func (r *Registry) commitNode(ctx context.Context, ev *audit.Event, fn func(tx *audit.Tx) (store.Node, error)) (store.Node, error) {
	var out store.Node
	err := r.audit.Commit(ctx, func(tx *audit.Tx) error {
		var err error
		if out, err = fn(tx); err != nil {
			return err
		}
		ev.Target = fmt.Sprintf("node:%d", out.ID)
		tx.Record(*ev)
		return nil
	})
	return out, err
}

// register does Register's work. It sets *known once the caller is known
// to the coordinator: its machine is a registered node, or its pre-auth
// key is one the coordinator issued (even a used or revoked one).
func (r *Registry) register(ctx context.Context, machine key.MachinePublic, req *wire.RegisterRequest, remote string, ev *audit.Event, knownCaller *bool) (store.Node, error) {
	existing, err := r.st.GetNodeByMachineKey(ctx, machine)
	known := err == nil
	*knownCaller = known
	if err := checkRequest(req); err != nil {
		return store.Node{}, err
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.Node{}, fmt.Errorf("look up machine: %w", err)
	}
	if known && existing.NodeKey == req.NodeKey && r.sameKey(ctx, req.AuthKey, existing.AuthKeyID) {
		// The node is back with the identity it registered: a restart
		// resending the key it joined with does not use the key again.
		ev.Action = "node.reconnect"
		return r.refresh(ctx, existing, req, ev)
	}
	if req.AuthKey == "" {
		if r.login == nil {
			return store.Node{}, login.ErrNoLogin
		}
		// Refused before a login starts: the user would sign in for
		// nothing.
		if len(req.Tags) > 0 {
			return store.Node{}, fmt.Errorf("%w: tags need a pre-auth key that grants them; a login makes a user's node", ErrTagNotGranted)
		}
		// A tagged node is owned by its tags and never acts as a user: a
		// sign-in on it would turn a server into someone's device.
		if known && existing.Tagged() {
			return store.Node{}, fmt.Errorf("%w: this machine is the tagged node %s (%s) and rejoins only with a pre-auth key; an admin can untag or delete it first",
				ErrTagNotGranted, existing.Name, strings.Join(existing.Tags, ","))
		}
		if req.Followup == "" {
			url, err := r.login.Begin(ctx, machine, remote)
			if err != nil {
				return store.Node{}, fmt.Errorf("start login: %w", err)
			}
			ev.Action = "node.login-started"
			return store.Node{}, &LoginRequired{URL: url}
		}
		u, err := r.login.Wait(ctx, machine, req.Followup)
		if err != nil {
			return store.Node{}, fmt.Errorf("%w: %w", ErrLoginFailed, err)
		}
		ev.Detail["user"] = u.Name
		ev.Action = "node.login"
		return r.commitNode(ctx, ev, func(tx *audit.Tx) (store.Node, error) {
			cur, err := tx.GetUser(ctx, u.ID)
			if err != nil {
				return store.Node{}, err
			}
			if cur.Disabled {
				return store.Node{}, fmt.Errorf("%w: user %s is disabled", ErrLoginFailed, cur.Name)
			}
			if err := checkOwner(ctx, tx, machine, cur); err != nil {
				return store.Node{}, err
			}
			return r.bind(ctx, tx, machine, req, store.AuthKey{UserID: u.ID})
		})
	}
	if err := auth.CheckFormat(req.AuthKey, auth.AuthKeyPrefix); err != nil {
		return store.Node{}, err
	}
	hash := auth.Hash(req.AuthKey)
	ev.Detail["authKey"] = req.AuthKey[:auth.DisplayLen]
	return r.commitNode(ctx, ev, func(tx *audit.Tx) (store.Node, error) {
		k, err := tx.GetAuthKeyByHash(ctx, hash)
		if errors.Is(err, store.ErrNotFound) {
			return store.Node{}, auth.ErrUnknownKey
		} else if err != nil {
			return store.Node{}, err
		}
		*knownCaller = true
		if err := auth.CheckAuthKey(k, r.now()); err != nil {
			return store.Node{}, err
		}
		for _, t := range req.Tags {
			if !slices.Contains(k.Tags, t) {
				return store.Node{}, fmt.Errorf("%w: %s", ErrTagNotGranted, t)
			}
		}
		if err := r.checkKeyRights(ctx, tx, k); err != nil {
			return store.Node{}, err
		}
		if err := checkKeyOwner(ctx, tx, machine, k); err != nil {
			return store.Node{}, err
		}
		n, err := r.bind(ctx, tx, machine, req, k)
		if err != nil {
			return store.Node{}, err
		}
		k.UsedCount++
		return n, tx.UpdateAuthKey(ctx, k)
	})
}

// checkOwner refuses a sign-in by u on a machine that is another user's
// node: a re-auth must not move a device to whoever signs in on it. A
// device changes owner only by an admin.
func checkOwner(ctx context.Context, q store.Queries, machine key.MachinePublic, u store.User) error {
	n, err := q.GetNodeByMachineKey(ctx, machine)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if n.Tagged() || n.UserID == 0 || n.UserID == u.ID {
		return nil
	}
	owner := fmt.Sprintf("user %d", n.UserID)
	if o, err := q.GetUser(ctx, n.UserID); err == nil {
		owner = o.Name
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return fmt.Errorf("%w: this device (%s) belongs to %s, not %s; an admin must delete it (warren-coordinator nodes delete %d) or give it a pre-auth key of its new owner",
		ErrLoginFailed, n.Name, owner, u.Name, n.ID)
}

// ErrDeviceOwned refuses to move a device to another owner without an
// admin's say.
var ErrDeviceOwned = errors.New("device belongs to another owner")

// checkKeyOwner refuses a pre-auth key that would give the machine's node
// another owner — another user, tags instead of a user, a user instead of
// tags, other tags — unless an admin (or the coordinator host's
// administrator) created the key, or the device's own user did. A device
// changes owner only with an admin's say: a member holding someone's
// laptop cannot make it theirs with a key of their own.
func checkKeyOwner(ctx context.Context, q store.Queries, machine key.MachinePublic, k store.AuthKey) error {
	n, err := q.GetNodeByMachineKey(ctx, machine)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if sameOwner(&n, k) || k.CreatorID == 0 || (!n.Tagged() && k.CreatorID == n.UserID) {
		return nil
	}
	if k.CreatorID > 0 {
		creator, err := q.GetUser(ctx, k.CreatorID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err == nil && creator.Role == store.RoleAdmin && !creator.Disabled {
			return nil
		}
	}
	owner := strings.Join(n.Tags, ",")
	if !n.Tagged() {
		owner = fmt.Sprintf("user %d", n.UserID)
		if o, err := q.GetUser(ctx, n.UserID); err == nil {
			owner = o.Name
		}
	}
	return fmt.Errorf("%w: this device (%s) belongs to %s; only a key an admin created (or its owner's own) can give it another owner, or an admin deletes it first (warren-coordinator nodes delete %d)",
		ErrDeviceOwned, n.Name, owner, n.ID)
}

// sameOwner reports whether binding n with k keeps its owner: the same
// user, or the same set of tags.
func sameOwner(n *store.Node, k store.AuthKey) bool {
	if n.Tagged() || len(k.Tags) > 0 {
		a, b := slices.Clone(n.Tags), slices.Clone(k.Tags)
		slices.Sort(a)
		slices.Sort(b)
		return slices.Equal(a, b)
	}
	return n.UserID == k.UserID
}

// bind creates or re-keys the machine's node as the pre-auth key says.
func (r *Registry) bind(ctx context.Context, q store.Queries, machine key.MachinePublic, req *wire.RegisterRequest, k store.AuthKey) (store.Node, error) {
	if other, err := q.GetNodeByNodeKey(ctx, req.NodeKey); err == nil && other.MachineKey != machine {
		return store.Node{}, ErrNodeKeyInUse
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.Node{}, err
	}
	n, err := q.GetNodeByMachineKey(ctx, machine)
	isNew := errors.Is(err, store.ErrNotFound)
	if err != nil && !isNew {
		return store.Node{}, err
	}
	n.MachineKey, n.NodeKey, n.DiscoKey = machine, req.NodeKey, req.DiscoKey
	n.UserID, n.Tags, n.Ephemeral, n.AuthKeyID = k.UserID, slices.Clone(k.Tags), k.Ephemeral, k.ID
	n.Hostname = req.Hostname
	n.KeyExpiry = r.expiryFor(&n)
	if isNew {
		n.Created = r.now()
		n.Pending = r.approval && !n.Tagged()
		return q.CreateNode(ctx, n)
	}
	if n.Tagged() {
		n.Pending = false
	}
	return q.UpdateNode(ctx, n)
}

// expiryFor returns when a key n gets now expires (zero: never): tagged
// nodes never expire; a user's node lasts its own KeyLifetime if it has
// one, else the coordinator's KeyExpiry.
func (r *Registry) expiryFor(n *store.Node) (t time.Time) {
	lifetime := r.keyExpiry
	if n.KeyLifetime != 0 {
		lifetime = n.KeyLifetime
	}
	if n.Tagged() || lifetime < 0 {
		return t
	}
	return r.now().Add(lifetime)
}

// sameKey reports whether authKey is empty or is the pre-auth key with ID
// id.
func (r *Registry) sameKey(ctx context.Context, authKey string, id store.AuthKeyID) bool {
	if authKey == "" {
		return true
	}
	if auth.CheckFormat(authKey, auth.AuthKeyPrefix) != nil || id == 0 {
		return false
	}
	k, err := r.st.GetAuthKeyByHash(ctx, auth.Hash(authKey))
	return err == nil && k.ID == id
}

// refresh lets a known node back in. A new disco key or hostname is
// stored, audited as node.reconnect; a node back as it was changes
// nothing and is not audited.
func (r *Registry) refresh(ctx context.Context, n store.Node, req *wire.RegisterRequest, ev *audit.Event) (store.Node, error) {
	if n.DiscoKey == req.DiscoKey && n.Hostname == req.Hostname {
		return n, nil
	}
	return r.commitNode(ctx, ev, func(tx *audit.Tx) (store.Node, error) {
		cur, err := tx.GetNode(ctx, n.ID)
		if err != nil {
			return store.Node{}, err
		}
		if cur.NodeKey != req.NodeKey {
			return store.Node{}, ErrNeedAuth // re-keyed meanwhile
		}
		if cur.Hostname != req.Hostname {
			ev.Detail["previousHostname"] = cur.Hostname
		}
		cur.DiscoKey, cur.Hostname = req.DiscoKey, req.Hostname
		return tx.UpdateNode(ctx, cur)
	})
}

// Connected records that node id opened a control channel.
func (r *Registry) Connected(ctx context.Context, id store.NodeID, eps []netip.AddrPort, homeRelay int) {
	r.mu.Lock()
	r.conns[id]++
	if t := r.reapers[id]; t != nil {
		t.Stop()
		delete(r.reapers, id)
	}
	r.mu.Unlock()
	now := r.now()
	if len(eps) > maxEndpoints {
		eps = eps[:maxEndpoints]
	}
	_ = r.engine.SetOnline(wire.NodeID(id), true, now)
	_ = r.engine.SetEndpoints(wire.NodeID(id), eps, homeRelay)
	r.saveSeen(ctx, id, eps, homeRelay, true, sessionOpen)
}

// UpdateEndpoints records a connected node's new endpoints.
func (r *Registry) UpdateEndpoints(ctx context.Context, id store.NodeID, eps []netip.AddrPort, homeRelay int) {
	if len(eps) > maxEndpoints {
		eps = eps[:maxEndpoints]
	}
	_ = r.engine.SetEndpoints(wire.NodeID(id), eps, homeRelay)
	r.saveSeen(ctx, id, eps, homeRelay, true, sessionSame)
}

// Disconnected records that one control channel of node id closed. An
// ephemeral node with no channel left is deleted after the grace period.
func (r *Registry) Disconnected(ctx context.Context, id store.NodeID) {
	r.mu.Lock()
	r.conns[id]--
	left := r.conns[id]
	if left <= 0 {
		delete(r.conns, id)
	}
	elsewhere := r.remote[id]
	r.mu.Unlock()
	if left > 0 {
		return
	}
	now := r.now()
	if !elsewhere {
		_ = r.engine.SetOnline(wire.NodeID(id), false, now)
	}
	n := r.saveSeen(ctx, id, nil, 0, false, sessionClosed)
	if n.Ephemeral && !elsewhere {
		r.scheduleReap(id)
	}
}

// What saveSeen records of this replica's control channel of the node.
const (
	sessionSame   = iota // unchanged
	sessionOpen          // the first one opened
	sessionClosed        // the last one closed
)

// saveSeen stores last-seen time (and endpoints when setEps) and whether
// this replica holds a control channel of the node (see replica.go), and
// returns the stored node.
func (r *Registry) saveSeen(ctx context.Context, id store.NodeID, eps []netip.AddrPort, relay int, setEps bool, session int) store.Node {
	var n store.Node
	err := r.st.Tx(context.WithoutCancel(ctx), func(q store.Queries) error {
		var err error
		if n, err = q.GetNode(ctx, id); err != nil {
			return err
		}
		n.LastSeen = r.now()
		if setEps {
			n.Endpoints, n.HomeRelay = eps, relay
		}
		if n, err = q.UpdateNode(ctx, n); err != nil {
			return err
		}
		if session != sessionSame {
			return q.SetSession(ctx, id, session == sessionOpen, n.LastSeen)
		}
		return nil
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		r.log.Warn("save last seen", "node", id, "err", err)
	}
	return n
}

func (r *Registry) scheduleReap(id store.NodeID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.conns[id] > 0 || r.remote[id] || r.reapers[id] != nil {
		return
	}
	r.reapers[id] = time.AfterFunc(r.grace, func() { r.reap(id) })
}

// reap deletes an ephemeral node that stayed offline for the grace period.
func (r *Registry) reap(id store.NodeID) {
	r.mu.Lock()
	if r.closed || r.reapers[id] == nil || r.conns[id] > 0 || r.remote[id] {
		r.mu.Unlock()
		return
	}
	delete(r.reapers, id)
	r.inflight.Add(1)
	r.mu.Unlock()
	defer r.inflight.Done()
	ctx := context.Background()
	err := r.audit.Commit(ctx, func(tx *audit.Tx) error {
		// Another replica may hold it now (it reconnected there).
		if n, err := tx.RemoteSessions(ctx, id, r.now().Add(-r.presence)); err != nil || n > 0 {
			return cmp.Or(err, errElsewhere)
		}
		tx.Record(audit.Event{Actor: "system", Action: "node.delete", Target: fmt.Sprintf("node:%d", id),
			Detail: map[string]any{"reason": "ephemeral node offline"}})
		return tx.DeleteNode(ctx, id)
	})
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, errElsewhere) {
		return
	}
	if err != nil {
		r.log.Error("delete ephemeral node", "node", id, "err", err)
		return
	}
	r.engine.Remove(wire.NodeID(id), ErrNodeDeleted)
}

// AdmitRelay reports whether the node with node key k may use Warren's
// relays: it must exist, be authorized, hold an unexpired key, and (for a
// user's node) belong to an enabled user. Relays ask this when a client
// connects and again from time to time, so offboarding reaches them.
func (r *Registry) AdmitRelay(ctx context.Context, k key.NodePublic) (bool, error) {
	n, err := r.st.GetNodeByNodeKey(ctx, k)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("registry: relay admission: %w", err)
	}
	var owner store.User
	if n.UserID != 0 && !n.Tagged() {
		owner, err = r.st.GetUser(ctx, n.UserID)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("registry: relay admission: %w", err)
		}
	}
	nm := toNetmap(&n, owner, false)
	return nm.Active(r.now()), nil
}
