package netmap

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// ErrReplaced closes a stream when the same node subscribes again.
var ErrReplaced = errors.New("netmap: stream replaced by a newer connection of the same node")

// ErrClosed is returned by Next after Close.
var ErrClosed = errors.New("netmap: stream closed")

// delta is one change, shared read-only by every stream it is queued on.
// Exactly one field is set (filter and filterSet count as one).
type delta struct {
	changed *wire.Node // peer added or changed (complete record)
	removed wire.NodeID
	patch   *wire.PeerPatch
	self    *wire.Node // the stream's own node changed
	full    bool       // the stream needs a full map
	// filter replaces the stream's packet filter (filterSet: present,
	// possibly empty).
	filter    []wire.FilterRule
	filterSet bool
	// filterDelta, when set (with filter), is the same change as rule
	// deltas against the filter queued before it, for streams that take
	// them.
	filterDelta    []wire.FilterRuleDelta
	hasFilterDelta bool
	posture        *wire.PostureStatus // the stream's own posture status changed
	ssh            *wire.SSHPolicy     // the stream's own SSH policy changed (never nil when set)
}

// Stream is one node's netmap subscription. One goroutine calls Next; any
// goroutine may call Close.
type Stream struct {
	e  *Engine
	id wire.NodeID
	// filterDeltas: the node applies wire.FilterDelta (fixed at
	// Subscribe).
	filterDeltas bool
	// filter is the packet filter the node has once it took everything
	// queued so far (guarded by e.mu, not mu): what filter deltas patch.
	filter []wire.FilterRule

	mu       sync.Mutex
	pending  []*delta
	needFull bool
	err      error // set when closed
	notify   chan struct{}
	// queuedAt is when the oldest change not yet taken was queued (zero:
	// none), for Config.OnPush.
	queuedAt time.Time
}

func newStream(e *Engine, id wire.NodeID) *Stream {
	return &Stream{e: e, id: id, notify: make(chan struct{}, 1)}
}

// NodeID returns the node this stream serves.
func (s *Stream) NodeID() wire.NodeID { return s.id }

// push queues d. Callers hold e.mu, so every stream sees deltas in the same
// order as the engine applied them.
func (s *Stream) push(d *delta) {
	s.mu.Lock()
	if s.queuedAt.IsZero() && s.err == nil && s.e.onPush != nil {
		s.queuedAt = time.Now()
	}
	switch {
	case s.err != nil:
	case d.full:
		s.needFull = true
		s.pending = s.pending[:0]
	case s.needFull:
		// The full map will be built later and include this change.
	case len(s.pending) >= s.e.maxQueue:
		s.needFull = true
		s.pending = nil
	default:
		s.pending = append(s.pending, d)
	}
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Pending reports how many deltas are queued (a full map counts as one).
func (s *Stream) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.needFull {
		return 1
	}
	return len(s.pending)
}

func (s *Stream) closeWith(err error) {
	if err == nil {
		err = ErrClosed
	}
	s.mu.Lock()
	if s.err == nil {
		s.err = err
		s.pending = nil
	}
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Close ends the stream; Next returns ErrClosed.
func (s *Stream) Close() {
	s.closeWith(ErrClosed)
	s.e.unsubscribe(s)
}

// Next waits for the next response: the full map first, then deltas merged
// from everything queued since the previous call. It returns the stream's
// close reason once closed.
func (s *Stream) Next(ctx context.Context) (*wire.MapResponse, error) {
	for {
		if resp, err := s.take(); resp != nil || err != nil {
			return resp, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.notify:
		}
	}
}

// take returns the queued changes as one response, or nil if there are none.
func (s *Stream) take() (*wire.MapResponse, error) {
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return nil, err
	}
	if s.needFull {
		// Build the full map under the engine lock so no delta slips between
		// the map and the queue.
		s.mu.Unlock()
		e := s.e
		now := e.now()
		e.mu.Lock()
		defer e.mu.Unlock()
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.err != nil {
			return nil, s.err
		}
		s.needFull = false
		s.pending = s.pending[:0]
		resp := e.fullMap(s.id, now)
		resp.Version = e.nextVersion(s.id)
		s.filter = resp.PacketFilter
		s.pushed(true)
		return resp, nil
	}
	if len(s.pending) == 0 {
		s.mu.Unlock()
		return nil, nil
	}
	ds := s.pending
	s.pending = nil
	s.pushed(false)
	s.mu.Unlock()
	resp := merge(ds, s.filterDeltas)
	s.e.mu.Lock()
	resp.Version = s.e.nextVersion(s.id)
	s.e.mu.Unlock()
	return resp, nil
}

// pushed tells Config.OnPush about a response taken now. Callers hold
// s.mu.
func (s *Stream) pushed(full bool) {
	if s.e.onPush == nil {
		return
	}
	var waited time.Duration
	if !s.queuedAt.IsZero() {
		waited = time.Since(s.queuedAt)
	}
	s.queuedAt = time.Time{}
	s.e.onPush(full, waited)
}

// merge folds queued deltas into one response: the last state of each peer
// wins, and patches to a peer sent in full in the same response are applied
// to that record. With filterDeltas, filter changes that all have rule
// deltas go out as them, in order, unless the last filter is smaller;
// otherwise the last filter goes out whole.
func merge(ds []*delta, filterDeltas bool) *wire.MapResponse {
	type state struct {
		changed *wire.Node
		removed bool
		patch   *wire.PeerPatch
	}
	peers := make(map[wire.NodeID]*state)
	get := func(id wire.NodeID) *state {
		st := peers[id]
		if st == nil {
			st = &state{}
			peers[id] = st
		}
		return st
	}
	resp := &wire.MapResponse{}
	deltaSize := 0 // sources added and removed by resp.FilterDelta
	for _, d := range ds {
		switch {
		case d.self != nil:
			resp.Self = d.self
		case d.posture != nil:
			resp.Posture = d.posture
		case d.ssh != nil:
			resp.SSH = d.ssh
		case d.filterSet:
			resp.PacketFilter = d.filter
			if !resp.FilterSet && filterDeltas && d.hasFilterDelta {
				// Rule deltas apply in order, so consecutive ones
				// concatenate.
				resp.FilterDelta = append(resp.FilterDelta, d.filterDelta...)
				for _, rd := range d.filterDelta {
					deltaSize += len(rd.Add) + len(rd.Remove)
				}
			} else {
				resp.FilterSet = true
			}
		case d.changed != nil:
			*get(d.changed.ID) = state{changed: d.changed}
		case d.patch != nil:
			st := get(d.patch.ID)
			switch {
			case st.removed:
				// A patch to a peer the node already forgot: nothing to say.
			case st.changed != nil:
				rec := cloneWire(*st.changed)
				rec.Apply(d.patch)
				st.changed = &rec
			default:
				st.patch = mergePatch(st.patch, d.patch)
			}
		default:
			*get(d.removed) = state{removed: true}
		}
	}
	for id, st := range peers {
		switch {
		case st.changed != nil:
			resp.PeersChanged = append(resp.PeersChanged, *st.changed)
		case st.removed:
			resp.PeersRemoved = append(resp.PeersRemoved, id)
		case st.patch != nil:
			resp.PeersPatched = append(resp.PeersPatched, *st.patch)
		}
	}
	switch {
	case resp.FilterSet:
		resp.FilterDelta = nil
	case resp.FilterDelta != nil && deltaSize >= filterSize(resp.PacketFilter):
		// Many changes at once: the filter itself is smaller.
		resp.FilterSet, resp.FilterDelta = true, nil
	default:
		resp.PacketFilter = nil
	}
	sortNodes(resp.PeersChanged)
	slices.Sort(resp.PeersRemoved)
	slices.SortFunc(resp.PeersPatched, func(a, b wire.PeerPatch) int { return cmp.Compare(a.ID, b.ID) })
	return resp
}

func mergePatch(a, b *wire.PeerPatch) *wire.PeerPatch {
	if a == nil {
		return b
	}
	m := *a
	if b.Endpoints != nil {
		m.Endpoints = b.Endpoints
	}
	if b.HomeRelay != nil {
		m.HomeRelay = b.HomeRelay
	}
	if b.Online != nil {
		m.Online = b.Online
	}
	if b.LastSeen != nil {
		m.LastSeen = b.LastSeen
	}
	return &m
}

func sortNodes(ns []wire.Node) {
	slices.SortFunc(ns, func(a, b wire.Node) int { return cmp.Compare(a.ID, b.ID) })
}

func cloneSlice[T any](s []T) []T {
	if s == nil {
		return nil
	}
	return slices.Clone(s)
}

// cloneWire copies a record deeply enough that the copy's slices can be
// replaced without touching the original. Slices are never mutated in place.
func cloneWire(n wire.Node) wire.Node {
	n.Tags = cloneSlice(n.Tags)
	n.Groups = cloneSlice(n.Groups)
	n.Postures = cloneSlice(n.Postures)
	n.Addresses = cloneSlice(n.Addresses)
	n.Endpoints = cloneSlice(n.Endpoints)
	return n
}

// expiry is a scheduled key expiry, kept in a min-heap by time.
type expiry struct {
	at time.Time
	id wire.NodeID
}

type expiryHeap []expiry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
