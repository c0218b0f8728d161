// Package registry owns the life of nodes, users and keys on the
// coordinator: it validates every change, writes it to the store together
// with its audit event (one transaction: both or neither), and then tells
// the netmap engine, so that the engine always mirrors what is stored.
//
// It is the only writer of users, nodes, pre-auth keys, API keys and
// nodes' posture attributes: the control server (registration, online
// state, endpoints, posture reports), the admin API (users, nodes, keys,
// custom: attributes) and the sign-in methods (which hand it what they
// proved, see SignIn and ApplyRecheck) all go through a Registry.
// Bookkeeping that no one decides — last seen, endpoints, an API key's
// last use, an identity provider's check time and rotated token — is
// written here too but not audited. It must never see a plaintext secret
// beyond the request that carries it, and never change the store for a
// request it rejects.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/login"
	"github.com/warrenmesh/warren/coordinator/netmap"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/policy"
	"github.com/warrenmesh/warren/internal/routes"
	"github.com/warrenmesh/warren/internal/wire"
)

// Defaults.
const (
	DefaultKeyExpiry      = 180 * 24 * time.Hour
	DefaultEphemeralGrace = 30 * time.Second
)

// Config configures a Registry.
type Config struct {
	Store  store.Store    // required
	Engine *netmap.Engine // required
	Audit  *audit.Log     // required
	// Failures counts refused registrations by callers the coordinator
	// does not know (an unknown machine without a key it issued); nil
	// makes a counter of its own.
	Failures *audit.Failures
	// Login enables interactive login; nil means pre-auth keys only.
	Login  login.Login
	Logger *slog.Logger
	Now    func() time.Time
	// KeyExpiry is how long a user node's key lasts; 0 means
	// DefaultKeyExpiry, negative means never. Tagged nodes never expire.
	KeyExpiry time.Duration
	// EphemeralGrace is how long an ephemeral node may stay offline before
	// it is deleted; 0 means DefaultEphemeralGrace.
	EphemeralGrace time.Duration
	// Policy returns the policy in force, whose tagOwners say who may
	// apply which tag; nil (or a nil policy) means no tag may be applied.
	Policy func() *policy.Policy
	// RequireApproval makes every new user node (registered by login or a
	// user's pre-auth key) wait in "pending" until an admin approves it.
	// Tagged nodes are created by keys an admin or tag owner made, and
	// need no approval.
	RequireApproval bool
	// PostureMaxAge is how long a node's posture report counts without a
	// newer report or heartbeat; 0 means DefaultPostureMaxAge.
	PostureMaxAge time.Duration
	// PresenceTTL is, with replicas sharing the store, how long after its
	// last heartbeat another replica's control channels still count (see
	// package replica): an ephemeral node another live replica holds is
	// never reaped. 0 means 15 s.
	PresenceTTL time.Duration
}

// Registry is the coordinator's single writer of node, user and key state.
type Registry struct {
	st        store.Store
	engine    *netmap.Engine
	audit     *audit.Log
	failures  *audit.Failures
	login     login.Login
	approval  bool
	log       *slog.Logger
	now       func() time.Time
	keyExpiry time.Duration
	grace     time.Duration
	policy    func() *policy.Policy
	maxAge    time.Duration // PostureMaxAge
	presence  time.Duration // PresenceTTL

	mu       sync.Mutex
	conns    map[store.NodeID]int           // open control channels per node
	remote   map[store.NodeID]bool          // nodes another replica holds a control channel of (see replica.go)
	reapers  map[store.NodeID]*time.Timer   // ephemeral deletions pending
	posture  map[store.NodeID]*postureTimer // next posture change per node, see posturetimers.go
	refusals map[store.NodeID]string        // why each node's last posture report was refused
	closed   bool
	inflight sync.WaitGroup // running reaper callbacks
}

// New loads every node from the store into the engine and returns the
// registry.
func New(ctx context.Context, cfg Config) (*Registry, error) {
	if cfg.Store == nil || cfg.Engine == nil || cfg.Audit == nil {
		return nil, errors.New("registry: Store, Engine and Audit are required")
	}
	r := &Registry{
		st: cfg.Store, engine: cfg.Engine, audit: cfg.Audit, login: cfg.Login, approval: cfg.RequireApproval,
		log: cfg.Logger, now: cfg.Now, keyExpiry: cfg.KeyExpiry, grace: cfg.EphemeralGrace,
		policy: cfg.Policy, maxAge: cfg.PostureMaxAge,
		conns:    make(map[store.NodeID]int),
		remote:   make(map[store.NodeID]bool),
		presence: cfg.PresenceTTL,
		reapers:  make(map[store.NodeID]*time.Timer),
		posture:  make(map[store.NodeID]*postureTimer),
		refusals: make(map[store.NodeID]string),
	}
	if r.maxAge <= 0 {
		r.maxAge = DefaultPostureMaxAge
	}
	if r.presence <= 0 {
		r.presence = 15 * time.Second
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.failures = cfg.Failures
	if r.failures == nil {
		r.failures = audit.NewFailures(r.log, 0)
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.keyExpiry == 0 {
		r.keyExpiry = DefaultKeyExpiry
	}
	if r.grace <= 0 {
		r.grace = DefaultEphemeralGrace
	}
	nodes, err := r.st.ListNodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("registry: load nodes: %w", err)
	}
	users, err := r.usersByID(ctx)
	if err != nil {
		return nil, err
	}
	attrs, err := r.st.ListAllNodeAttrs(ctx)
	if err != nil {
		return nil, fmt.Errorf("registry: load node attributes: %w", err)
	}
	byNode := make(map[store.NodeID][]store.NodeAttr)
	for _, a := range attrs {
		byNode[a.Node] = append(byNode[a.Node], a)
	}
	now := r.now()
	for i := range nodes {
		n := &nodes[i]
		nm := toNetmap(n, users[n.UserID], false)
		r.withPosture(&nm, byNode[n.ID], now)
		r.engine.Upsert(nm)
		if n.Ephemeral {
			// It was offline while the coordinator was down: give it the
			// grace period to come back.
			r.scheduleReap(n.ID)
		}
	}
	r.log.Info("registry loaded", "nodes", len(nodes), "users", len(users))
	return r, nil
}

// Close stops pending ephemeral deletions and waits for running ones.
func (r *Registry) Close() {
	r.mu.Lock()
	r.closed = true
	for id, t := range r.reapers {
		t.Stop()
		delete(r.reapers, id)
	}
	for id, t := range r.posture {
		t.t.Stop()
		delete(r.posture, id)
	}
	r.mu.Unlock()
	r.inflight.Wait()
}

func (r *Registry) usersByID(ctx context.Context) (map[store.UserID]store.User, error) {
	users, err := r.st.ListUsers(ctx)
	if err != nil {
		return nil, fmt.Errorf("registry: load users: %w", err)
	}
	m := make(map[store.UserID]store.User, len(users))
	for _, u := range users {
		m[u.ID] = u
	}
	return m, nil
}

// publish pushes the stored state of node n to the engine.
func (r *Registry) publish(ctx context.Context, n *store.Node) {
	var u store.User
	if n.UserID != 0 {
		var err error
		u, err = r.st.GetUser(ctx, n.UserID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			r.log.Error("publish node: load owner", "node", n.ID, "err", err)
		}
	}
	r.mu.Lock()
	online := r.conns[n.ID] > 0 || r.remote[n.ID]
	r.mu.Unlock()
	nm := toNetmap(n, u, online)
	attrs, err := r.st.ListNodeAttrs(ctx, n.ID)
	if err != nil {
		// Fail closed: without its attributes the node meets no posture.
		r.log.Error("publish node: load attributes", "node", n.ID, "err", err)
	}
	r.withPosture(&nm, attrs, r.now())
	r.engine.Upsert(nm)
}

// toNetmap converts a stored node and its owner into the engine's view.
func toNetmap(n *store.Node, owner store.User, online bool) netmap.Node {
	w := wire.Node{
		ID: wire.NodeID(n.ID), Name: n.Name, Hostname: n.Hostname, Tags: n.Tags,
		NodeKey: n.NodeKey, DiscoKey: n.DiscoKey,
		Addresses: []netip.Prefix{netip.PrefixFrom(n.IPv4, 32), netip.PrefixFrom(n.IPv6, 128)},
		Endpoints: n.Endpoints, HomeRelay: n.HomeRelay, Online: online,
		LastSeen: n.LastSeen, KeyExpiry: n.KeyExpiry,
	}
	w.Routes = routes.Enabled(n.AdvertisedRoutes, n.ApprovedRoutes)
	nm := netmap.Node{Wire: w, UserID: int64(n.UserID), Authorized: !n.Pending}
	if !n.Tagged() {
		nm.Wire.User = owner.Name
		nm.Wire.UserName = owner.DisplayName
		nm.Groups = owner.Groups
		nm.Admin = owner.Role == store.RoleAdmin
		nm.Disabled = owner.Disabled
		nm.MFAAt = owner.MFAAt
	}
	return nm
}
