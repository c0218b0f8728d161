package controlclient

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
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
	// SSH is the ssh rules that let peers log in to this node; nil
	// admits nobody. Never mutated: a change replaces it.
	SSH *wire.SSHPolicy
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

// PeerByAddr returns the peer holding mesh address a.
func (nm *Netmap) PeerByAddr(a netip.Addr) (wire.Node, bool) {
	a = a.Unmap()
	for _, p := range nm.Peers {
		for _, pa := range p.Addresses {
			if pa.Addr() == a {
				return p, true
			}
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
// nm.Peers and nm.PacketFilter are never modified once built: a change
// builds new ones, so snapshots share them.
type mapState struct {
	have bool
	nm   Netmap
}

// apply folds resp into the state. It refuses deltas before a full map and
// versions that go back, leaving the state unchanged. A delta costs one
// pass over the peers (a copy) plus the sorting of what it changes, and
// nothing when it changes no peer.
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
		s.nm = Netmap{Domain: resp.Domain, DNS: resp.DNS, Posture: resp.Posture, SSH: resp.SSH,
			Peers: mergePeers(nil, resp.Peers, nil, nil)}
		s.have = true
	}
	s.nm.Version = resp.Version
	if resp.Self != nil {
		s.nm.Self = *resp.Self
	}
	if len(resp.PeersChanged) > 0 || len(resp.PeersRemoved) > 0 || len(resp.PeersPatched) > 0 {
		s.nm.Peers = mergePeers(s.nm.Peers, resp.PeersChanged, resp.PeersRemoved, resp.PeersPatched)
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
	if resp.SSH != nil && !resp.Full {
		s.nm.SSH = resp.SSH
	}
	return nil
}

func byID(a, b wire.Node) int { return cmp.Compare(a.ID, b.ID) }

// mergePeers returns a new list, sorted by ID, of old (sorted by ID) with
// changed added or replacing the peer of the same ID (the last one wins),
// then removed taken out, then patched applied in order to the peers left
// (patches to unknown peers are ignored). It modifies none of its
// arguments' elements; when it only appends, the result shares old's
// array (whose elements past len(old) it may overwrite).
func mergePeers(old, changed []wire.Node, removed []wire.NodeID, patched []wire.PeerPatch) []wire.Node {
	if len(changed) > 0 {
		changed = slices.Clone(changed)
		slices.SortStableFunc(changed, byID)
		// Keep the last of each ID.
		w := 0
		for i := range changed {
			if i+1 < len(changed) && changed[i+1].ID == changed[i].ID {
				continue
			}
			changed[w] = changed[i]
			w++
		}
		changed = changed[:w]
	}
	if len(removed) > 0 {
		removed = slices.Clone(removed)
		slices.Sort(removed)
	}
	if len(patched) > 0 {
		patched = slices.Clone(patched)
		slices.SortStableFunc(patched, func(a, b wire.PeerPatch) int { return cmp.Compare(a.ID, b.ID) })
	}
	if len(removed) == 0 && len(patched) == 0 && len(changed) > 0 &&
		(len(old) == 0 || changed[0].ID > old[len(old)-1].ID) {
		// Only new peers, all after the last one (IDs grow, so this is a
		// join): append. Snapshots are capped at their length, so nothing
		// that holds one sees past it.
		return append(old, changed...)
	}
	out := make([]wire.Node, 0, len(old)+len(changed))
	i, j, r, p := 0, 0, 0, 0 // old, changed, removed, patched
	for i < len(old) || j < len(changed) {
		var n wire.Node
		switch {
		case j >= len(changed) || (i < len(old) && old[i].ID < changed[j].ID):
			n = old[i]
			i++
		case i >= len(old) || changed[j].ID < old[i].ID:
			n = changed[j]
			j++
		default:
			n = changed[j]
			i++
			j++
		}
		for r < len(removed) && removed[r] < n.ID {
			r++
		}
		for p < len(patched) && patched[p].ID < n.ID {
			p++
		}
		if r < len(removed) && removed[r] == n.ID {
			continue
		}
		for ; p < len(patched) && patched[p].ID == n.ID; p++ {
			n.Apply(&patched[p])
		}
		out = append(out, n)
	}
	return out
}

// snapshot returns a copy that the caller may keep. It shares the peer
// list and the filter with the state, which never modifies them (it may
// append past the end of a snapshot's peers, which the snapshot's capacity
// hides); the caller must not modify them either.
func (s *mapState) snapshot() *Netmap {
	nm := s.nm
	nm.Peers = slices.Clip(nm.Peers)
	return &nm
}
