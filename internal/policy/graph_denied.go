package policy

import (
	"net/netip"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// This file answers "why was this packet denied", for flow logs. A node's
// packet filter holds only the rules that apply to its sources now, so a
// denied packet's node knows only "no-rule"; the graph still knows the
// rules left out because of a condition of their source (posture, MFA
// freshness) or of the clock (a closed time window).

// Deny reasons WhyDenied returns. They are the values of flow records'
// Reason beside the node's own "no-rule".
const (
	DenyPosture    = "posture"     // the source fails every srcPosture of the rule
	DenyMFA        = "mfa"         // the source's MFA login is missing or older than the rule's mfa
	DenyTimeWindow = "time-window" // the rule's time window was closed
)

// denyRank orders the reasons: the first a user can fix comes first
// (their device's posture, then a fresh MFA login; only waiting opens a
// time window).
func denyRank(reason string) int {
	switch reason {
	case DenyPosture:
		return 0
	case DenyMFA:
		return 1
	}
	return 2
}

// WhyDenied explains a packet from node src to dst (an address of node
// dstNode or inside a route it serves) on proto and port that dstNode's
// filter denied at time at (zero: the graph's clock). It looks for a rule
// (acls or ip grant) whose sources select src and whose destinations
// cover dst, port and proto, but that does not apply only because of its
// conditions: the source's posture (as the graph holds it now), its MFA
// freshness at at, or the rule's time window at at. Of those rules it
// picks the one failing fewest conditions, then the one whose reason
// ranks first (posture, mfa, time-window), then the first in the policy,
// and returns that reason (the first of its failing conditions in that
// order) and the rule's id ("acls[3]", "grants[0]"). It returns two empty
// strings when no such rule exists, when some rule admits the packet at
// at (the filter that denied it was older), or when either node is
// unknown. Its cost is
// proportional to the rules that may select src (by user, group or tag,
// and those with generic sources), never to the mesh.
func (g *Graph) WhyDenied(src, dstNode wire.NodeID, dst netip.Addr, proto uint8, port uint16, at time.Time) (reason, ruleID string) {
	sslot, ok := g.slots[src]
	if !ok {
		return "", ""
	}
	dslot, ok := g.slots[dstNode]
	if !ok {
		return "", ""
	}
	if at.IsZero() {
		at = g.now
	}
	s, d := g.nodes[sslot], g.nodes[dslot]
	dst = dst.Unmap()
	sameUser := len(s.selfUser()) > 0 && s.selfUser() == d.selfUser()
	type pick struct {
		ri     int32
		failed int
		reason string
	}
	var best pick
	found, allowed := false, false
	g.epoch++
	if g.epoch == 0 {
		clear(g.stamp)
		g.epoch = 1
	}
	g.p.candidates(&s.subject, func(ri int32) {
		if g.stamp[ri] == g.epoch {
			return
		}
		g.stamp[ri] = g.epoch
		r := g.rules[ri].r
		if allowed || !r.srcMatches(&s.subject) || !protoCheck(r, &flow{proto: int(proto)}) {
			return
		}
		failed, why := g.conditionsFailed(r, s, at)
		if failed == 0 {
			// A rule admits the packet at at: the filter was older than
			// the packet, or at is at a window's edge. Nothing to refine.
			allowed = allowed || r.covers(d, sameUser, dst, proto, port)
			return
		}
		c := pick{ri, failed, why}
		if found && (c.failed > best.failed || c.failed == best.failed &&
			(denyRank(c.reason) > denyRank(best.reason) || denyRank(c.reason) == denyRank(best.reason) && c.ri > best.ri)) {
			return // not better than the best so far
		}
		if r.covers(d, sameUser, dst, proto, port) {
			best, found = c, true
		}
	})
	if !found || allowed {
		return "", ""
	}
	return best.reason, g.rules[best.ri].r.ref
}

// covers reports whether r's destinations, as compiled into node d's
// filter (dstPorts, routedPorts), hold dst and port on proto: d's own
// addresses (autogroup:self too when the source is a device of d's user)
// or its approved routes. It allocates only for a router.
func (r *rule) covers(d *gnode, sameUser bool, dst netip.Addr, proto uint8, port uint16) bool {
	portOK := func(ports []portRange) bool { return !hasPorts(int(proto)) || inPorts(ports, port) }
	if len(r.via) == 0 {
		for i := range r.dst {
			e := &r.dst[i]
			if e.sel.kind == selSelf {
				if !sameUser {
					continue
				}
			} else if !e.sel.matches(&d.subject) {
				continue
			}
			if !portOK(e.ports) {
				continue
			}
			for _, a := range d.addrs {
				if a.Addr() == dst && (e.sel.kind != selPrefix || e.sel.prefix.Bits() <= a.Bits() && e.sel.prefix.Contains(dst)) {
					return true
				}
			}
		}
	}
	for _, pr := range routedPorts(r, d) {
		if pr.Prefix.Contains(dst) && (!hasPorts(int(proto)) || port >= pr.First && port <= pr.Last) {
			return true
		}
	}
	return false
}

// conditionsFailed counts the conditions of r node s fails at at, and
// names the first in denyRank order.
func (g *Graph) conditionsFailed(r *rule, s *gnode, at time.Time) (n int, first string) {
	fail := func(reason string) {
		if n == 0 {
			first = reason
		}
		n++
	}
	if len(r.postures) > 0 {
		ok := false
		for _, pi := range r.postures {
			ok = ok || s.postureOK[pi]
		}
		if !ok {
			fail(DenyPosture)
		}
	}
	if r.mfa > 0 && (s.tagged || s.node.MFAAt.IsZero() || at.Sub(s.node.MFAAt) > r.mfa) {
		fail(DenyMFA)
	}
	if r.when != nil && !r.when.active(at) {
		fail(DenyTimeWindow)
	}
	return n, first
}

// RuleWindow describes the time window of the rule with id ruleID
// ("acls[3]"), as in "Mon,Tue 09:00-17:00 Europe/Paris", or returns ""
// when the rule has none or does not exist.
func (p *Policy) RuleWindow(ruleID string) string {
	for _, r := range p.rules {
		if r.ref == ruleID {
			if r.when == nil {
				return ""
			}
			return r.when.describe()
		}
	}
	return ""
}
