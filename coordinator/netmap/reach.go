package netmap

import (
	"net/netip"
	"slices"

	"github.com/warrenmesh/warren/internal/wire"
)

// Reach is one way a node may reach a peer: a rule of the peer's
// compiled filter (what the peer enforces) whose sources cover the
// node's addresses.
type Reach struct {
	Peer      wire.NodeID
	PeerName  string
	Ports     []wire.PortRange
	Protocols []int  // empty: TCP, UDP and ICMP
	Rule      string // "acls[3]", "grants[0]"; empty when unknown
}

// Reachable returns what node id may reach under the rules active now,
// from its peers' compiled filters, by peer and then rule (nil for an
// unknown or inactive node). It is for people asking "what can I
// reach?"; nodes learn it from their own netmaps.
func (e *Engine) Reachable(id wire.NodeID) []Reach {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := e.nodes[id]
	if n == nil {
		return nil
	}
	var peers []wire.NodeID
	e.graph.Peers(id, func(p wire.NodeID) bool { peers = append(peers, p); return true })
	slices.Sort(peers)
	var out []Reach
	for _, pid := range peers {
		p := e.nodes[pid]
		if p == nil {
			continue
		}
		for _, fr := range e.graph.CompactFilter(pid) {
			if len(fr.DstPorts) == 0 || !coversAny(fr, n.Wire.Addresses) {
				continue // a capability-only rule, or one for other sources
			}
			out = append(out, Reach{Peer: pid, PeerName: p.Wire.Name, Ports: slices.Clone(fr.DstPorts),
				Protocols: slices.Clone(fr.Protocols), Rule: fr.Rule})
		}
	}
	return out
}

// PostureStatus returns what node id is told about its posture now: the
// attributes held, the rules it fails only because of posture, and those
// it fails only because its user's MFA is stale (nil: nothing to say).
func (e *Engine) PostureStatus(id wire.NodeID) *wire.PostureStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := e.nodes[id]
	if n == nil {
		return nil
	}
	return e.postureStatus(n, e.now())
}

// coversAny reports whether fr's sources hold any of addrs.
func coversAny(fr wire.FilterRule, addrs []netip.Prefix) bool {
	for _, src := range fr.SrcPrefixes {
		for _, a := range addrs {
			if src.Contains(a.Addr()) {
				return true
			}
		}
	}
	return false
}
