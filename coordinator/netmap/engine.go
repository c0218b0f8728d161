package netmap

import (
	"container/heap"
	"context"
	"errors"
	"log/slog"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/policy"
	"github.com/warrenmesh/warren/internal/wire"
)

// Config configures an Engine. The zero value works: a policy that allows
// nothing, real clock, discarded logs.
type Config struct {
	// Policy is the compiled policy file; nil allows nothing (every node
	// sees no peers and accepts no packets). SetPolicy replaces it.
	Policy *policy.Policy
	Domain string // mesh DNS domain sent in full maps
	// DNS is the extra records and split-DNS routes sent in full maps
	// (nil: none).
	DNS *wire.DNSConfig
	// DERPMap is the relay regions sent in full maps (nil: none).
	DERPMap *wire.DERPMap
	Logger  *slog.Logger
	Now     func() time.Time
	// MaxQueue bounds the deltas queued for one stream; past it the stream
	// gets a full map instead. Zero means 1024.
	MaxQueue int
	// OnRevoke, if set, is told each node key that stops being active:
	// the node was removed, disabled, unauthorized, its key expired, or
	// it was re-keyed (the old key). Relays use it to drop the key at
	// once. It is called with the engine locked and must not block or
	// call back into the engine.
	OnRevoke func(key.NodePublic)
	// OnPush, if set, is told of each response a stream hands to its
	// node (Stream.Next): whether it is a full map, and how long the
	// oldest change in it waited since it was queued (the real clock,
	// not Now). It is called from the stream's goroutine and must not
	// block; metrics count and time pushes with it.
	OnPush func(full bool, waited time.Duration)
}

// ErrUnknownNode is returned for a node the engine does not hold.
var ErrUnknownNode = errors.New("netmap: unknown node")

// Engine holds every node and every connected stream and turns changes into
// per-stream deltas. All methods are safe for concurrent use.
type Engine struct {
	domain   string
	dns      *wire.DNSConfig
	derpMap  *wire.DERPMap
	log      *slog.Logger
	now      func() time.Time
	maxQueue int
	onRevoke func(key.NodePublic)
	onPush   func(full bool, waited time.Duration)

	mu sync.Mutex
	// graph holds the active nodes only (Node.Active), so inactive nodes
	// appear in nobody's peers or filters.
	graph    *policy.Graph
	nodes    map[wire.NodeID]*Node
	streams  map[wire.NodeID]*Stream
	versions map[wire.NodeID]uint64 // last version sent to each node
	// posture is the posture status last queued for each connected node
	// (posture.go).
	posture map[wire.NodeID]*wire.PostureStatus
	// ssh is the SSH policy last queued for each connected node; absent
	// while a full map is on its way (ssh.go).
	ssh      map[wire.NodeID]*wire.SSHPolicy
	expiries expiryHeap
	wake     chan struct{} // tells Run the next deadline may have moved
	// routeViews holds, for each active router, which of its routes each
	// peer may use, as last sent (routes.go).
	routeViews map[wire.NodeID]*routeView
}

// New returns an engine with no nodes.
func New(cfg Config) *Engine {
	e := &Engine{
		domain:   cfg.Domain,
		dns:      cfg.DNS,
		derpMap:  cfg.DERPMap,
		log:      cfg.Logger,
		now:      cfg.Now,
		maxQueue: cfg.MaxQueue,
		onRevoke: cfg.OnRevoke,
		onPush:   cfg.OnPush,
		nodes:    make(map[wire.NodeID]*Node),
		streams:  make(map[wire.NodeID]*Stream),
		versions: make(map[wire.NodeID]uint64),
		posture:  make(map[wire.NodeID]*wire.PostureStatus),
		ssh:      make(map[wire.NodeID]*wire.SSHPolicy),
		wake:     make(chan struct{}, 1),

		routeViews: make(map[wire.NodeID]*routeView),
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.maxQueue <= 0 {
		e.maxQueue = 1024
	}
	p := cfg.Policy
	if p == nil {
		p = policy.Empty()
	}
	e.graph = policy.NewGraph(p, e.now())
	return e
}

// Len returns the number of nodes held.
func (e *Engine) Len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.nodes)
}

// Streams returns the number of open netmap streams: the nodes connected
// now.
func (e *Engine) Streams() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.streams)
}

// Node returns a copy of the node with the given ID.
func (e *Engine) Node(id wire.NodeID) (Node, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := e.nodes[id]
	if n == nil {
		return Node{}, false
	}
	return *n, true
}

// PolicyNode returns the node named name (its unique DNS label) as the
// policy sees it, for explaining decisions about real nodes.
func (e *Engine) PolicyNode(name string) (policy.Node, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, n := range e.nodes {
		if n.Wire.Name == name {
			return n.policyNode(), true
		}
	}
	return policy.Node{}, false
}

// SetPolicy replaces the policy. Every node whose peers change gets a
// fresh full map, every node whose filter alone changes the new filter (as
// rule deltas when it takes them); nobody else hears anything.
func (e *Engine) SetPolicy(p *policy.Policy) {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.advance(now)
	old := e.graph.Policy()
	peers, filters := e.graph.SetPolicySplit(p)
	e.fullTo(peers)
	e.filtersTo(filters, 0, now)
	e.fullTo(e.capMapsChanged(old, p, now))
	e.postureTo(e.graph.PostureChanged(), 0)
	e.reidentify(now)
	e.sshAll(old, p, now)
	e.poke()
}

// fullTo queues a full map for each connected node in ids, and tells the
// peers of the routers among them what their routes now mean for them.
// Callers hold e.mu.
func (e *Engine) fullTo(ids []wire.NodeID) {
	for _, id := range ids {
		e.toSelf(id, &delta{full: true})
	}
	e.routesChanged(ids, e.now())
}

// Upsert adds a node or replaces it, and queues the deltas the change causes
// for every affected stream before it returns.
func (e *Engine) Upsert(n Node) {
	n.Wire = cloneWire(n.Wire)
	n.Wire.CapMap = nil // the policy's, and only in the node's own record (selfRecord)
	n.Groups = cloneSlice(n.Groups)
	n.Attrs = maps.Clone(n.Attrs)
	n.PostureAttrs = cloneSlice(n.PostureAttrs)
	nn := &n
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.nodes[nn.ID()]
	nn.Wire.Expired = nn.expired(now)
	e.identify(nn)
	if old != nil {
		if old.Wire.NodeKey != nn.Wire.NodeKey {
			e.revoke(old.Wire.NodeKey)
		} else if old.Active(now) && !nn.Active(now) {
			e.revoke(nn.Wire.NodeKey)
		}
	}
	if !nn.Wire.KeyExpiry.IsZero() && !nn.Wire.Expired {
		heap.Push(&e.expiries, expiry{at: nn.Wire.KeyExpiry, id: nn.ID()})
		e.poke()
	}
	switch {
	case old == nil:
		e.nodes[nn.ID()] = nn
		filters := e.syncGraph(nn, now)
		e.recordTo(nn, now, nil)
		e.toSelf(nn.ID(), &delta{full: true})
		e.filtersTo(filters, nn.ID(), now)
		e.sshPeer(nn, true, e.peerIDs(nn, now), now)
	case old.Active(now) != nn.Active(now) || !samePolicyView(old, nn):
		e.reroute(old, nn, now)
	case reflect.DeepEqual(old.Wire, nn.Wire):
		// Only what peers never see changed (a posture report's times, say):
		// postureTo below tells the node itself.
		e.nodes[nn.ID()] = nn
	default:
		e.nodes[nn.ID()] = nn
		e.recordTo(nn, now, nil)
		self := e.selfRecord(nn, now)
		e.toSelf(nn.ID(), &delta{self: &self})
	}
	e.postureTo(e.graph.PostureChanged(), nn.ID())
}

// syncGraph brings the policy graph in line with n (present if active,
// absent otherwise) and returns the nodes whose filters or peers the change
// touched. Callers hold e.mu.
func (e *Engine) syncGraph(n *Node, now time.Time) []wire.NodeID {
	if n.Active(now) {
		return e.graph.Upsert(n.policyNode())
	}
	return e.graph.Remove(n.ID())
}

// filtersTo queues a fresh packet filter for each connected node in ids
// except skip (which gets a full map anyway), and tells the peers of the
// routers among them what their routes now mean for them. Callers hold
// e.mu.
func (e *Engine) filtersTo(ids []wire.NodeID, skip wire.NodeID, now time.Time) {
	cache := make(diffCache)
	for _, id := range ids {
		var filter []wire.FilterRule
		computed := false
		if s := e.streams[id]; s != nil && id != skip {
			filter, computed = e.graph.CompactFilter(id), true
			d := &delta{filter: filter, filterSet: true}
			if s.filterDeltas {
				d.filterDelta, d.hasFilterDelta = filterDelta(s.filter, filter, cache)
				if d.hasFilterDelta && len(d.filterDelta) == 0 {
					d = nil // the node has this filter already
				}
			}
			s.filter = filter
			if d != nil {
				s.push(d)
			}
		}
		if n := e.nodes[id]; n != nil && len(n.Wire.Routes) > 0 {
			if !computed {
				filter = e.graph.CompactFilter(id)
			}
			e.routeChanged(n, filter, now)
		}
	}
}

// reroute replaces old with nn when the change may alter who sees the node:
// peers that lose it get a removal, peers that gain it get the record, nodes
// whose filters changed get the new filter, and the node itself gets a
// fresh full map (its peer set and filter changed). Callers hold e.mu.
func (e *Engine) reroute(old, nn *Node, now time.Time) {
	before := make(map[wire.NodeID]bool)
	e.forPeers(old, now, func(s *Stream) { before[s.id] = true })
	prev := slices.Collect(maps.Keys(before))
	e.nodes[nn.ID()] = nn
	filters := e.syncGraph(nn, now)
	removed := &delta{removed: nn.ID()}
	// A peer that had the record already needs it again only if it changed
	// (a posture change, say, changes the policy's view but not the
	// record), or, for a router, if the routes it may use changed.
	again := !reflect.DeepEqual(old.Wire, nn.Wire)
	oldView := e.routeViews[nn.ID()]
	e.recordTo(nn, now, func(s *Stream, view *routeView) bool {
		if !before[s.id] {
			return true
		}
		delete(before, s.id)
		return again || view.differsFor(oldView, e.nodes[s.id].Wire.Addresses)
	})
	for id := range before {
		if s := e.streams[id]; s != nil {
			s.push(removed)
		}
	}
	e.toSelf(nn.ID(), &delta{full: true})
	e.filtersTo(filters, nn.ID(), now)
	after := e.peerIDs(nn, now)
	e.sshPeer(nn, true, after, now)
	e.sshPeer(nn, false, slices.DeleteFunc(prev, func(id wire.NodeID) bool { return slices.Contains(after, id) }), now)
}

// Remove deletes a node: its peers forget it and its own stream is closed
// with reason.
func (e *Engine) Remove(id wire.NodeID, reason error) {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	n := e.nodes[id]
	if n == nil {
		return
	}
	d := &delta{removed: id}
	peers := e.peerIDs(n, now)
	e.forPeers(n, now, func(s *Stream) { s.push(d) })
	delete(e.nodes, id)
	delete(e.routeViews, id)
	e.revoke(n.Wire.NodeKey)
	e.filtersTo(e.graph.Remove(id), id, now)
	e.postureTo(e.graph.PostureChanged(), 0)
	e.sshPeer(n, false, peers, now)
	delete(e.versions, id)
	delete(e.posture, id)
	delete(e.ssh, id)
	if s := e.streams[id]; s != nil {
		delete(e.streams, id)
		s.closeWith(reason)
	}
}

// SetOnline records whether a node is connected and tells its peers.
func (e *Engine) SetOnline(id wire.NodeID, online bool, lastSeen time.Time) error {
	return e.patch(id, func(n *wire.Node, p *wire.PeerPatch) {
		n.Online, n.LastSeen = online, lastSeen
		p.Online, p.LastSeen = &online, &lastSeen
	})
}

// SetEndpoints records a node's endpoints and home relay and tells its
// peers.
func (e *Engine) SetEndpoints(id wire.NodeID, eps []netip.AddrPort, homeRelay int) error {
	// Nodes repeat their endpoints in every update (posture heartbeats
	// too): the same ones again are no news for the peers.
	e.mu.Lock()
	old := e.nodes[id]
	same := old != nil && old.Wire.HomeRelay == homeRelay && slices.Equal(old.Wire.Endpoints, eps)
	e.mu.Unlock()
	if same {
		return nil
	}
	eps = cloneSlice(eps)
	return e.patch(id, func(n *wire.Node, p *wire.PeerPatch) {
		n.Endpoints, n.HomeRelay = eps, homeRelay
		p.Endpoints, p.HomeRelay = &eps, &homeRelay
	})
}

// patch applies a small change to a node's record and queues it as a patch
// to its peers. The record is copied, never mutated, because queued deltas
// may still point at the old one.
func (e *Engine) patch(id wire.NodeID, apply func(*wire.Node, *wire.PeerPatch)) error {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.nodes[id]
	if old == nil {
		return ErrUnknownNode
	}
	nn := *old
	nn.Wire = cloneWire(old.Wire)
	p := &wire.PeerPatch{ID: id}
	apply(&nn.Wire, p)
	e.nodes[id] = &nn
	d := &delta{patch: p}
	e.forPeers(&nn, now, func(s *Stream) { s.push(d) })
	return nil
}

// forPeers calls fn for the stream of every connected active peer of n; it
// does nothing when n itself is inactive. Callers hold e.mu.
func (e *Engine) forPeers(n *Node, now time.Time, fn func(*Stream)) {
	if !n.Active(now) {
		return
	}
	e.graph.Peers(n.ID(), func(id wire.NodeID) bool {
		if s := e.streams[id]; s != nil {
			if p := e.nodes[id]; p != nil && p.Active(now) {
				fn(s)
			}
		}
		return true
	})
}

func (e *Engine) toSelf(id wire.NodeID, d *delta) {
	if d.full {
		delete(e.ssh, id) // the full map compiles it
	}
	if s := e.streams[id]; s != nil {
		s.push(d)
	}
}

// Subscribe opens the node's netmap stream. Its first response is the full
// map; later ones are deltas. An earlier stream of the same node is closed.
// Filter changes go out whole: SubscribeVersion sends rule deltas to nodes
// that apply them.
func (e *Engine) Subscribe(id wire.NodeID) (*Stream, error) {
	return e.SubscribeVersion(id, 0)
}

// SubscribeVersion is Subscribe for a node that speaks the given protocol
// version (wire.RegisterRequest.Version): from wire.FilterDeltaVersion on,
// filter changes that only move sources go out as rule deltas.
func (e *Engine) SubscribeVersion(id wire.NodeID, version int) (*Stream, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.nodes[id] == nil {
		return nil, ErrUnknownNode
	}
	if old := e.streams[id]; old != nil {
		old.closeWith(ErrReplaced)
	}
	s := newStream(e, id)
	s.filterDeltas = version >= wire.FilterDeltaVersion
	s.push(&delta{full: true})
	delete(e.ssh, id) // the full map compiles it
	e.streams[id] = s
	return s, nil
}

func (e *Engine) unsubscribe(s *Stream) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.streams[s.id] == s {
		delete(e.streams, s.id)
	}
}

// fullMap builds n's complete netmap. Callers hold e.mu.
func (e *Engine) fullMap(id wire.NodeID, now time.Time) *wire.MapResponse {
	n := e.nodes[id]
	resp := &wire.MapResponse{Full: true, Domain: e.domain, DNS: e.dns, FilterSet: true, DERPMap: e.derpMap}
	if n == nil {
		return resp
	}
	self := e.selfRecord(n, now)
	resp.Self = &self
	resp.Posture = e.postureStatus(n, now)
	e.posture[id] = resp.Posture
	resp.SSH = e.sshPolicyOf(n, now)
	e.ssh[id] = resp.SSH
	if !n.Active(now) {
		return resp // no peers, empty filter: deny everything
	}
	e.graph.Peers(id, func(pid wire.NodeID) bool {
		if p := e.nodes[pid]; p != nil && p.Active(now) {
			rec := &p.Wire
			if len(rec.Routes) > 0 {
				v := e.routeViews[pid]
				if v == nil { // not yet built: build it rather than send every route
					v = e.routeViewOf(p, now)
					e.setRouteView(pid, v)
				}
				rec = v.record(rec, n)
			}
			resp.Peers = append(resp.Peers, *rec)
		}
		return true
	})
	sortNodes(resp.Peers)
	resp.PacketFilter = e.graph.CompactFilter(id)
	return resp
}

func (e *Engine) nextVersion(id wire.NodeID) uint64 {
	e.versions[id]++
	return e.versions[id]
}

// Run applies time-driven changes until ctx is done: nodes whose keys
// expire lose their peers and disappear from others' maps at that moment,
// and policy rules gated by time windows or MFA freshness start and stop
// applying at their boundaries.
func (e *Engine) Run(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := e.due()
		d := time.Hour
		if !next.IsZero() {
			d = max(next.Sub(e.now()), time.Millisecond)
		}
		timer.Reset(d)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		case <-e.wake:
		}
	}
}

// due applies every expiry and policy time boundary that is due and
// returns the next deadline (zero: none).
func (e *Engine) due() time.Time {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.advance(now)
	next := e.expireDue(now)
	e.postureTo(e.graph.PostureChanged(), 0)
	if p := e.graph.NextChange(); !p.IsZero() && (next.IsZero() || p.Before(next)) {
		next = p
	}
	return next
}

// advance moves the policy's clock to now: nodes whose peers changed get
// a full map, nodes whose filter alone changed the filter (as rule deltas
// when they take them). Callers hold e.mu.
func (e *Engine) advance(now time.Time) {
	peers, filters := e.graph.AdvanceSplit(now)
	e.fullTo(peers)
	e.filtersTo(filters, 0, now)
}

// expireDue applies every key expiry that is due and returns the next one.
// Callers hold e.mu.
func (e *Engine) expireDue(now time.Time) time.Time {
	for e.expiries.Len() > 0 {
		top := e.expiries[0]
		if top.at.After(now) {
			return top.at
		}
		heap.Pop(&e.expiries)
		n := e.nodes[top.id]
		if n == nil || !n.Wire.KeyExpiry.Equal(top.at) || n.Wire.Expired {
			continue // stale entry
		}
		e.log.Info("node key expired", "node", n.ID(), "name", n.Wire.Name)
		before := *n
		before.Wire.KeyExpiry = time.Time{} // as it was: active
		nn := *n
		nn.Wire = cloneWire(n.Wire)
		nn.Wire.Expired = true
		e.reroute(&before, &nn, now)
		e.revoke(nn.Wire.NodeKey)
	}
	return time.Time{}
}

// revoke tells OnRevoke that k is no longer active. Callers hold e.mu.
func (e *Engine) revoke(k key.NodePublic) {
	if e.onRevoke != nil && !k.IsZero() {
		e.onRevoke(k)
	}
}

func (e *Engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}
