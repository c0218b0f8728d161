package netmap

import (
	"errors"
	"reflect"
	"slices"
	"time"

	"github.com/warrenmesh/warren/internal/policy"
	"github.com/warrenmesh/warren/internal/wire"
)

// SSH policies and identity in peer records.
//
// A node that some ssh rule targets (policy.SSHTargets) is an SSH
// destination: its full map carries its compiled wire.SSHPolicy, and
// e.ssh holds the one last queued for its stream. When a peer joins,
// leaves or changes identity, only the SSH destinations among its peers
// (before and after) are updated, and only that peer's place in their
// rules' Sources and Recorders is recomputed (sshPeer). A node queued a
// full map loses its e.ssh entry: the full map compiles its policy again.
// A policy change compiles every connected node's policy again.
//
// Peer records carry the owner's groups as the policy sees them and the
// postures the node passes (identify), recomputed on every Upsert and
// policy change.

// identify fills n's policy-derived identity (Groups, Postures) in its
// record. Callers hold e.mu.
func (e *Engine) identify(n *Node) {
	pn := n.policyNode()
	p := e.graph.Policy()
	n.Wire.Groups = p.NodeGroups(&pn)
	n.Wire.Postures = p.NodePostures(&pn)
}

// reidentify recomputes every node's identity under a new policy, tells
// the peers of each node whose record changed, and the node itself.
// Callers hold e.mu.
func (e *Engine) reidentify(now time.Time) {
	for id, n := range e.nodes {
		nn := *n
		nn.Wire = cloneWire(n.Wire)
		e.identify(&nn)
		if slices.Equal(nn.Wire.Groups, n.Wire.Groups) && slices.Equal(nn.Wire.Postures, n.Wire.Postures) {
			continue
		}
		e.nodes[id] = &nn
		e.recordTo(&nn, now, nil)
		self := e.selfRecord(&nn, now)
		e.toSelf(id, &delta{self: &self})
	}
}

// sshPolicyOf compiles n's SSH policy from its active peers; nil when no
// rule targets n. Callers hold e.mu.
func (e *Engine) sshPolicyOf(n *Node, now time.Time) *wire.SSHPolicy {
	if !n.Active(now) {
		return nil
	}
	p := e.graph.Policy()
	pn := n.policyNode()
	if !p.SSHTargets(&pn) {
		return nil
	}
	var peers []*policy.Node
	e.graph.Peers(n.ID(), func(pid wire.NodeID) bool {
		if q := e.nodes[pid]; q != nil && q.Active(now) {
			qn := q.policyNode()
			peers = append(peers, &qn)
		}
		return true
	})
	return p.SSHPolicyFor(&pn, peers)
}

// sendSSH queues pol to s unless s has it already. Callers hold e.mu.
func (e *Engine) sendSSH(s *Stream, pol *wire.SSHPolicy) {
	old, known := e.ssh[s.id]
	if known && sameSSH(old, pol) {
		return
	}
	e.ssh[s.id] = pol
	if pol == nil {
		pol = &wire.SSHPolicy{} // a delta says "no rules now" explicitly
	}
	s.push(&delta{ssh: pol})
}

// sshAll compiles every connected node's SSH policy again after a policy
// change. Callers hold e.mu.
func (e *Engine) sshAll(old, nw *policy.Policy, now time.Time) {
	if old.SSHRuleCount() == 0 && nw.SSHRuleCount() == 0 {
		return
	}
	for _, s := range e.streams {
		if n := e.nodes[s.id]; n != nil {
			e.sendSSH(s, e.sshPolicyOf(n, now))
		}
	}
}

// sshPeer updates x's place in the SSH policy of each connected SSH
// destination in dsts: present says whether x is now their active peer.
// Callers hold e.mu.
func (e *Engine) sshPeer(x *Node, present bool, dsts []wire.NodeID, now time.Time) {
	p := e.graph.Policy()
	if p.SSHRuleCount() == 0 {
		return
	}
	xn := x.policyNode()
	var memo idSets
	for _, id := range dsts {
		s, d := e.streams[id], e.nodes[id]
		old := e.ssh[id]
		if s == nil || d == nil || old == nil || id == x.ID() {
			continue // not an SSH destination, or a full map is on its way
		}
		dn := d.policyNode()
		nw, ok := sshWithPeer(p, old, &dn, &xn, present, &memo)
		if !ok {
			e.sendSSH(s, e.sshPolicyOf(d, now)) // out of step: compile it whole
			continue
		}
		if nw != old {
			e.ssh[id] = nw
			s.push(&delta{ssh: nw})
		}
	}
}

// sshWithPeer returns pol with peer x's membership in each rule's Sources
// and Recorders set as the policy says (present: x is dst's peer; else it
// is in none). It copies only the rules that change and returns pol itself
// when none does; ok is false when pol does not fit the policy's rules for
// dst.
func sshWithPeer(p *policy.Policy, pol *wire.SSHPolicy, dst, x *policy.Node, present bool, memo *idSets) (_ *wire.SSHPolicy, ok bool) {
	type role struct{ source, recorder bool }
	roles := make([]role, len(pol.Rules))
	ok = true
	n := 0
	if present {
		p.SSHPeerRole(dst, x, func(i int, rule string, source, recorder bool) {
			if i >= len(roles) || pol.Rules[i].Rule != rule {
				ok = false
				return
			}
			roles[i] = role{source, recorder}
			n++
		})
		if !ok || n != len(pol.Rules) {
			return nil, false
		}
	}
	out := pol
	for i := range pol.Rules {
		r := &pol.Rules[i]
		srcs, srcChanged := memo.setMember(r.Sources, x.ID, roles[i].source)
		var recs []wire.NodeID
		recChanged := false
		if r.Record != nil {
			recs, recChanged = memo.setMember(r.Record.Recorders, x.ID, roles[i].recorder)
		}
		if !srcChanged && !recChanged {
			continue
		}
		if out == pol {
			out = &wire.SSHPolicy{Rules: slices.Clone(pol.Rules)}
		}
		nr := &out.Rules[i]
		nr.Sources = srcs
		if recChanged {
			rec := *r.Record
			rec.Recorders = recs
			nr.Record = &rec
		}
	}
	return out, true
}

// idSets remembers, during one peer's update, the ID lists it made from
// others, so that SSH destinations whose rules admitted the same peers
// share one new list instead of copying it each (a peer joining a mesh of
// a thousand servers would otherwise copy a thousand lists of every
// member). The lists are never modified once made, so sharing is safe;
// once shared, later updates find them by identity without comparing.
type idSets struct {
	made []idSetMade
}

type idSetMade struct {
	from, to []wire.NodeID
	id       wire.NodeID
	in       bool
}

// maxIDSets bounds what one update remembers: the distinct source lists
// among the destinations (one per rule, typically).
const maxIDSets = 16

// setMember is setMember with the lists made so far in this update
// reused.
func (m *idSets) setMember(ids []wire.NodeID, id wire.NodeID, in bool) ([]wire.NodeID, bool) {
	for _, x := range m.made {
		if x.id == id && x.in == in && len(x.from) == len(ids) &&
			(len(ids) == 0 || &x.from[0] == &ids[0] || slices.Equal(x.from, ids)) {
			return x.to, true
		}
	}
	out, changed := setMember(ids, id, in)
	if changed && len(m.made) < maxIDSets {
		m.made = append(m.made, idSetMade{from: ids, to: out, id: id, in: in})
	}
	return out, changed
}

// setMember returns sorted ids with id in it or not, as a new slice when
// that changes it (ids itself is never modified).
func setMember(ids []wire.NodeID, id wire.NodeID, in bool) ([]wire.NodeID, bool) {
	i, found := slices.BinarySearch(ids, id)
	switch {
	case found == in:
		return ids, false
	case in:
		return slices.Insert(slices.Clone(ids), i, id), true
	case len(ids) == 1:
		return nil, true // as SSHPolicyFor writes an empty list
	default:
		return slices.Delete(slices.Clone(ids), i, i+1), true
	}
}

// sameSSH compares two SSH policies; nil equals empty.
func sameSSH(a, b *wire.SSHPolicy) bool {
	if a == nil || len(a.Rules) == 0 {
		return b == nil || len(b.Rules) == 0
	}
	return b != nil && reflect.DeepEqual(a, b)
}

// peerIDs lists the connected active peers of n. Callers hold e.mu.
func (e *Engine) peerIDs(n *Node, now time.Time) []wire.NodeID {
	var ids []wire.NodeID
	e.forPeers(n, now, func(s *Stream) { ids = append(ids, s.id) })
	return ids
}

// ErrNotPeer is returned by SSHDecide when the source is not an active
// peer of the destination.
var ErrNotPeer = errors.New("netmap: not an active peer")

// SSHDecide answers, for the coordinator's own check of an SSH call, which
// rule lets src log in to dst as localUser as things are now: both nodes
// active, src a peer of dst (ssh rules grant no network access). It
// returns copies of both nodes; ok is false when no rule allows it.
func (e *Engine) SSHDecide(dst, src wire.NodeID, localUser string) (dn, sn Node, d policy.SSHDecision, ok bool, err error) {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	dp, sp := e.nodes[dst], e.nodes[src]
	if dp == nil || !dp.Active(now) {
		return Node{}, Node{}, d, false, ErrUnknownNode
	}
	if sp == nil || !sp.Active(now) || src == dst {
		return *dp, Node{}, d, false, ErrNotPeer
	}
	peer := false
	e.graph.Peers(dst, func(id wire.NodeID) bool {
		peer = id == src
		return !peer
	})
	if !peer {
		return *dp, *sp, d, false, ErrNotPeer
	}
	dpn, spn := dp.policyNode(), sp.policyNode()
	d, ok = e.graph.Policy().SSHDecide(&spn, &dpn, localUser)
	return *dp, *sp, d, ok, nil
}
