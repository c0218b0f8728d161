package controlclient

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/warrenmesh/warren/internal/wire"
)

// Netmap is a node's current view of the mesh, built by applying the
// coordinator's full maps and deltas in order.
type Netmap struct {
	Version      uint64
	Self         wire.Node
	Peers        []wire.Node // sorted by ID
	PacketFilter []wire.FilterRule
	Domain       string
	// DNS is the coordinator's extra records and split-DNS routes; nil
	// when it has none.
	DNS *wire.DNSConfig
	// DERPMap lists the relay regions; nil when the coordinator runs none.
	DERPMap *wire.DERPMap
	// Posture is the coordinator's view of this node's posture: the
	// attributes it holds and the rules the node fails only because of
	// posture; nil when it has nothing to say. Never mutated: a change
	// replaces it.
	Posture *wire.PostureStatus
}

// Peer returns the peer with the given ID.
func (nm *Netmap) Peer(id wire.NodeID) (wire.Node, bool) {
	i, ok := slices.BinarySearchFunc(nm.Peers, id, func(n wire.Node, id wire.NodeID) int { return cmp.Compare(n.ID, id) })
	if !ok {
		return wire.Node{}, false
	}
	return nm.Peers[i], true
}

// PeerByName returns the peer with the given DNS label.
func (nm *Netmap) PeerByName(name string) (wire.Node, bool) {
	for _, p := range nm.Peers {
		if p.Name == name {
			return p, true
		}
	}
	return wire.Node{}, false
}

// Errors from applying responses out of order.
var (
	ErrDeltaBeforeFull = errors.New("controlclient: delta before the first full map")
	ErrStaleVersion    = errors.New("controlclient: netmap version did not increase")
)

// mapState applies responses; it is owned by the client's run loop.
type mapState struct {
	have  bool
	nm    Netmap
	peers map[wire.NodeID]wire.Node
}

// apply folds resp into the state. It refuses deltas before a full map and
// versions that go back, leaving the state unchanged.
func (s *mapState) apply(resp *wire.MapResponse) error {
	if !resp.Full && !s.have {
		return ErrDeltaBeforeFull
	}
	if s.have && resp.Version <= s.nm.Version {
		return fmt.Errorf("%w: %d after %d", ErrStaleVersion, resp.Version, s.nm.Version)
	}
	// A filter delta that does not fit leaves the state unchanged: the
	// caller reconnects for a full map.
	filter := s.nm.PacketFilter
	if !resp.FilterSet && len(resp.FilterDelta) > 0 {
		if resp.Full {
			return fmt.Errorf("%w: in a full map", wire.ErrBadFilterDelta)
		}
		f, err := wire.ApplyFilterDelta(filter, resp.FilterDelta)
		if err != nil {
			return err
		}
		filter = f
	}
	if resp.Full {
		s.peers = make(map[wire.NodeID]wire.Node, len(resp.Peers))
		for _, p := range resp.Peers {
			s.peers[p.ID] = p
		}
		s.nm = Netmap{Domain: resp.Domain, DNS: resp.DNS, Posture: resp.Posture}
		s.have = true
	}
	s.nm.Version = resp.Version
	if resp.Self != nil {
		s.nm.Self = *resp.Self
	}
	for _, p := range resp.PeersChanged {
		s.peers[p.ID] = p
	}
	for _, id := range resp.PeersRemoved {
		delete(s.peers, id)
	}
	for _, pp := range resp.PeersPatched {
		p, ok := s.peers[pp.ID]
		if !ok {
			continue // a patch for a peer we do not know: nothing to apply
		}
		p.Apply(&pp)
		s.peers[pp.ID] = p
	}
	switch {
	case resp.FilterSet:
		s.nm.PacketFilter = resp.PacketFilter
	case len(resp.FilterDelta) > 0:
		s.nm.PacketFilter = filter
	}
	if resp.DERPMap != nil {
		s.nm.DERPMap = resp.DERPMap
	}
	if resp.Posture != nil && !resp.Full {
		s.nm.Posture = resp.Posture
	}
	s.nm.Peers = slices.SortedFunc(maps.Values(s.peers), func(a, b wire.Node) int { return cmp.Compare(a.ID, b.ID) })
	return nil
}

// snapshot returns a copy that the caller may keep.
func (s *mapState) snapshot() *Netmap {
	nm := s.nm
	nm.Peers = slices.Clone(s.nm.Peers)
	nm.PacketFilter = slices.Clone(s.nm.PacketFilter)
	return &nm
}
