package netmap

import (
	"container/heap"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// Config configures an Engine. The zero value works: SameOwner policy,
// real clock, discarded logs.
type Config struct {
	Policy Policy
	Domain string // mesh DNS domain sent in full maps
	Logger *slog.Logger
	Now    func() time.Time
	// MaxQueue bounds the deltas queued for one stream; past it the stream
	// gets a full map instead. Zero means 1024.
	MaxQueue int
}

// ErrUnknownNode is returned for a node the engine does not hold.
var ErrUnknownNode = errors.New("netmap: unknown node")

// Engine holds every node and every connected stream and turns changes into
// per-stream deltas. All methods are safe for concurrent use.
type Engine struct {
	policy   Policy
	domain   string
	log      *slog.Logger
	now      func() time.Time
	maxQueue int

	mu       sync.Mutex
	idx      *Index
	streams  map[wire.NodeID]*Stream
	versions map[wire.NodeID]uint64 // last version sent to each node
	expiries expiryHeap
	wake     chan struct{} // tells Run the next expiry may have moved
}

// New returns an engine with no nodes.
func New(cfg Config) *Engine {
	e := &Engine{
		policy:   cfg.Policy,
		domain:   cfg.Domain,
		log:      cfg.Logger,
		now:      cfg.Now,
		maxQueue: cfg.MaxQueue,
		idx:      newIndex(),
		streams:  make(map[wire.NodeID]*Stream),
		versions: make(map[wire.NodeID]uint64),
		wake:     make(chan struct{}, 1),
	}
	if e.policy == nil {
		e.policy = SameOwner{}
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
	return e
}

// Len returns the number of nodes held.
func (e *Engine) Len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.idx.Len()
}

// Node returns a copy of the node with the given ID.
func (e *Engine) Node(id wire.NodeID) (Node, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := e.idx.Get(id)
	if n == nil {
		return Node{}, false
	}
	return *n, true
}

// Upsert adds a node or replaces it, and queues the deltas the change causes
// for every affected stream before it returns.
func (e *Engine) Upsert(n Node) {
	n.Wire = cloneWire(n.Wire)
	nn := &n
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.idx.Get(nn.ID())
	if old != nil {
		e.idx.remove(old)
	}
	nn.Wire.Expired = nn.expired(now)
	e.idx.add(nn)
	if !nn.Wire.KeyExpiry.IsZero() && !nn.Wire.Expired {
		heap.Push(&e.expiries, expiry{at: nn.Wire.KeyExpiry, id: nn.ID()})
		e.poke()
	}
	rec := &delta{changed: &nn.Wire}
	switch {
	case old == nil:
		e.forPeers(nn, now, func(s *Stream) { s.push(rec) })
		e.toSelf(nn.ID(), &delta{full: true})
	case old.Active(now) != nn.Active(now) || !sameVisibility(old, nn):
		e.reroute(old, nn, now)
	default:
		e.forPeers(nn, now, func(s *Stream) { s.push(rec) })
		e.toSelf(nn.ID(), &delta{self: &nn.Wire})
	}
}

// reroute handles a change that may alter who sees the node: peers that
// lose it get a removal, peers that gain it get the record, and the node
// itself gets a fresh full map (its peer set and filter changed).
func (e *Engine) reroute(old, nn *Node, now time.Time) {
	before := make(map[wire.NodeID]bool)
	// old is no longer in the index, but Peers only reads old's attributes.
	e.policy.Peers(old, e.idx, func(p *Node) bool {
		if old.Active(now) && p.Active(now) {
			before[p.ID()] = true
		}
		return true
	})
	rec := &delta{changed: &nn.Wire}
	removed := &delta{removed: nn.ID()}
	e.forPeers(nn, now, func(s *Stream) {
		delete(before, s.id)
		s.push(rec)
	})
	for id := range before {
		if s := e.streams[id]; s != nil {
			s.push(removed)
		}
	}
	e.toSelf(nn.ID(), &delta{full: true})
	// A change of addresses or owner can change peers' filters too.
	if e.policyFiltersDependOnPeers() {
		e.forPeers(nn, now, func(s *Stream) { s.push(&delta{full: true}) })
	}
}

// policyFiltersDependOnPeers reports whether peers' filters must be
// recomputed when a node's addresses or owner change. SameOwner's filter
// depends only on the node itself.
func (e *Engine) policyFiltersDependOnPeers() bool {
	_, ok := e.policy.(SameOwner)
	return !ok
}

// Remove deletes a node: its peers forget it and its own stream is closed
// with reason.
func (e *Engine) Remove(id wire.NodeID, reason error) {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	n := e.idx.Get(id)
	if n == nil {
		return
	}
	d := &delta{removed: id}
	e.forPeers(n, now, func(s *Stream) { s.push(d) })
	e.idx.remove(n)
	delete(e.versions, id)
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
	old := e.idx.Get(id)
	if old == nil {
		return ErrUnknownNode
	}
	nn := *old
	nn.Wire = cloneWire(old.Wire)
	p := &wire.PeerPatch{ID: id}
	apply(&nn.Wire, p)
	e.idx.remove(old)
	e.idx.add(&nn)
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
	e.policy.Peers(n, e.idx, func(p *Node) bool {
		if s := e.streams[p.ID()]; s != nil && p.Active(now) {
			fn(s)
		}
		return true
	})
}

func (e *Engine) toSelf(id wire.NodeID, d *delta) {
	if s := e.streams[id]; s != nil {
		s.push(d)
	}
}

// Subscribe opens the node's netmap stream. Its first response is the full
// map; later ones are deltas. An earlier stream of the same node is closed.
func (e *Engine) Subscribe(id wire.NodeID) (*Stream, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.idx.Get(id) == nil {
		return nil, ErrUnknownNode
	}
	if old := e.streams[id]; old != nil {
		old.closeWith(ErrReplaced)
	}
	s := newStream(e, id)
	s.push(&delta{full: true})
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
	n := e.idx.Get(id)
	resp := &wire.MapResponse{Full: true, Domain: e.domain, FilterSet: true}
	if n == nil {
		return resp
	}
	self := cloneWire(n.Wire)
	resp.Self = &self
	if !n.Active(now) {
		return resp // no peers, empty filter: deny everything
	}
	e.policy.Peers(n, e.idx, func(p *Node) bool {
		if p.Active(now) {
			resp.Peers = append(resp.Peers, p.Wire)
		}
		return true
	})
	sortNodes(resp.Peers)
	resp.PacketFilter = e.policy.Filter(n, e.idx)
	return resp
}

func (e *Engine) nextVersion(id wire.NodeID) uint64 {
	e.versions[id]++
	return e.versions[id]
}

// Run re-evaluates nodes whose keys expire, at the moment they expire, until
// ctx is done. Expired nodes lose their peers and disappear from others'
// maps.
func (e *Engine) Run(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := e.expireDue()
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

// expireDue applies every expiry that is due and returns the next one.
func (e *Engine) expireDue() time.Time {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	for e.expiries.Len() > 0 {
		top := e.expiries[0]
		if top.at.After(now) {
			return top.at
		}
		heap.Pop(&e.expiries)
		n := e.idx.Get(top.id)
		if n == nil || !n.Wire.KeyExpiry.Equal(top.at) || n.Wire.Expired {
			continue // stale entry
		}
		e.log.Info("node key expired", "node", n.ID(), "name", n.Wire.Name)
		before := *n
		before.Wire.KeyExpiry = time.Time{} // as it was: active
		nn := *n
		nn.Wire = cloneWire(n.Wire)
		nn.Wire.Expired = true
		e.idx.remove(n)
		e.idx.add(&nn)
		e.reroute(&before, &nn, now)
	}
	return time.Time{}
}

func (e *Engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}
