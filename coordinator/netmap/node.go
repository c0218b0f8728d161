// Package netmap computes each node's network map (self, peers, packet
// filter) from the coordinator's in-memory view of all nodes and a Policy,
// and fans changes out to connected nodes as deltas.
//
// The cost of a change is proportional to the number of nodes it affects
// (the changed node's peers), never to the square of the mesh size: a delta
// is built once, shared by every stream it goes to, and queued without
// copying. A slow stream never blocks the engine: past a bound its queue is
// dropped and it gets a fresh full map instead. This package holds no
// secrets and does no I/O; persistence is the caller's job.
package netmap

import (
	"slices"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// Node is the engine's view of one node: its netmap record plus what the
// policy and the engine need to decide who sees it.
type Node struct {
	// Wire is the record peers receive. Its ID, Tags and User must match the
	// fields below.
	Wire wire.Node
	// UserID is the owning user (for tagged nodes: the user who registered
	// it; policies treat tagged nodes as owned by their tags).
	UserID int64
	// Groups are the owner's groups (empty for tagged nodes).
	Groups []string
	// Authorized is false while a node waits for admin approval.
	Authorized bool
	// Disabled is true when the owning user is disabled.
	Disabled bool
}

// ID returns the node's ID.
func (n *Node) ID() wire.NodeID { return n.Wire.ID }

// Tagged reports whether the node is owned by tags.
func (n *Node) Tagged() bool { return len(n.Wire.Tags) > 0 }

// Active reports whether the node may have peers at now: authorized, owner
// not disabled, key not expired.
func (n *Node) Active(now time.Time) bool {
	return n.Authorized && !n.Disabled && !n.expired(now)
}

func (n *Node) expired(now time.Time) bool {
	return !n.Wire.KeyExpiry.IsZero() && !now.Before(n.Wire.KeyExpiry)
}

// sameVisibility reports whether a and b (two versions of one node) are seen
// by the same nodes under any policy that depends on owner, tags and groups.
func sameVisibility(a, b *Node) bool {
	return a.UserID == b.UserID && slices.Equal(a.Wire.Tags, b.Wire.Tags) &&
		slices.Equal(a.Groups, b.Groups) && slices.Equal(a.Wire.Addresses, b.Wire.Addresses)
}

// Index holds every node, with lookups a policy needs to find peers without
// scanning the whole mesh.
type Index struct {
	byID   map[wire.NodeID]*Node
	byUser map[int64]map[wire.NodeID]*Node // user-owned (untagged) nodes
	byTag  map[string]map[wire.NodeID]*Node
}

func newIndex() *Index {
	return &Index{
		byID:   make(map[wire.NodeID]*Node),
		byUser: make(map[int64]map[wire.NodeID]*Node),
		byTag:  make(map[string]map[wire.NodeID]*Node),
	}
}

// Len returns the number of nodes.
func (x *Index) Len() int { return len(x.byID) }

// Get returns the node with the given ID, or nil.
func (x *Index) Get(id wire.NodeID) *Node { return x.byID[id] }

// All calls fn for every node until fn returns false.
func (x *Index) All(fn func(*Node) bool) {
	for _, n := range x.byID {
		if !fn(n) {
			return
		}
	}
}

// OwnedBy calls fn for every untagged node of user uid until fn returns
// false.
func (x *Index) OwnedBy(uid int64, fn func(*Node) bool) {
	for _, n := range x.byUser[uid] {
		if !fn(n) {
			return
		}
	}
}

// WithTag calls fn for every node carrying tag until fn returns false.
func (x *Index) WithTag(tag string, fn func(*Node) bool) {
	for _, n := range x.byTag[tag] {
		if !fn(n) {
			return
		}
	}
}

func (x *Index) add(n *Node) {
	x.byID[n.ID()] = n
	if !n.Tagged() {
		addTo(x.byUser, n.UserID, n)
	}
	for _, t := range n.Wire.Tags {
		addTo(x.byTag, t, n)
	}
}

func (x *Index) remove(n *Node) {
	delete(x.byID, n.ID())
	if !n.Tagged() {
		removeFrom(x.byUser, n.UserID, n.ID())
	}
	for _, t := range n.Wire.Tags {
		removeFrom(x.byTag, t, n.ID())
	}
}

func addTo[K comparable](m map[K]map[wire.NodeID]*Node, k K, n *Node) {
	set := m[k]
	if set == nil {
		set = make(map[wire.NodeID]*Node)
		m[k] = set
	}
	set[n.ID()] = n
}

func removeFrom[K comparable](m map[K]map[wire.NodeID]*Node, k K, id wire.NodeID) {
	set := m[k]
	delete(set, id)
	if len(set) == 0 {
		delete(m, k)
	}
}
