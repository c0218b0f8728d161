package policy

import (
	"slices"
	"strconv"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// Compiling ssh rules for the node that enforces them. The coordinator
// sends each destination node the rules whose dst selects it
// (SSHPolicyFor), with the peers each rule admits, and answers that
// node's check calls itself (SSHDecide), never trusting the rule or period
// the node names.

// AttrSSHRecord is Warren's node attribute (nodeAttrs "attr") that makes
// every SSH session to the node recorded: rules without recorders of their
// own are recorded by the coordinator, and fail closed.
const AttrSSHRecord = "warren:ssh-record"

// SSHCheckDefault is the checkPeriod of a check rule that sets none.
const SSHCheckDefault = 12 * time.Hour

// SSHDecision is the rule that lets one source log in to one destination
// as one local user.
type SSHDecision struct {
	Rule        string        // "ssh[2]"
	Check       bool          // a check rule: the user signs in again within CheckPeriod
	CheckPeriod time.Duration // wire.SSHCheckAlways: every session
}

// sshRef names an ssh rule by its place in the section.
func sshRef(i int) string { return "ssh[" + strconv.Itoa(i) + "]" }

// mayTarget reports whether a dst of r can select dst for some source:
// a selector that matches it, or autogroup:self on a user-owned device.
func (r *sshRule) mayTarget(dst *subject) bool {
	for i := range r.dst {
		d := &r.dst[i]
		if d.kind == selSelf {
			if dst.selfUser() != "" {
				return true
			}
			continue
		}
		if d.matches(dst) {
			return true
		}
	}
	return false
}

// admits reports whether r lets src log in to dst at all (some user).
func (r *sshRule) admits(src, dst *subject) bool {
	return r.matchesSrc(src) && r.matchesDst(src, dst)
}

// SSHPolicyFor compiles the ssh rules that let dst's peers log in to dst:
// the rules whose dst may select it, in policy order, each with the peers
// its src admits (Sources, sorted) and, when the session must be recorded,
// the peers carrying one of its recorder tags. It returns nil when no rule
// targets dst (the node admits nobody). peers are dst's peers; the result
// shares nothing with them.
func (p *Policy) SSHPolicyFor(dst *Node, peers []*Node) *wire.SSHPolicy {
	if len(p.ext.ssh) == 0 {
		return nil
	}
	ds := p.nodeSubject(dst)
	var out *wire.SSHPolicy
	var subs []*subject
	recordAll := false
	for _, r := range p.ext.ssh {
		if !r.mayTarget(ds) {
			continue
		}
		if out == nil {
			out = &wire.SSHPolicy{}
			subs = make([]*subject, len(peers))
			for i, n := range peers {
				subs[i] = p.nodeSubject(n)
			}
			_, recordAll = p.NodeCapMap(dst)[AttrSSHRecord]
		}
		wr := r.wireRule(recordAll)
		for i, n := range peers {
			if r.admits(subs[i], ds) {
				wr.Sources = append(wr.Sources, n.ID)
			}
			if wr.Record != nil && len(r.recorders) > 0 && r.isRecorder(n) {
				wr.Record.Recorders = append(wr.Record.Recorders, n.ID)
			}
		}
		slices.Sort(wr.Sources)
		if wr.Record != nil {
			slices.Sort(wr.Record.Recorders)
		}
		out.Rules = append(out.Rules, wr)
	}
	return out
}

// wireRule is r without its sources and recorders.
func (r *sshRule) wireRule(recordAll bool) wire.SSHRule {
	wr := wire.SSHRule{
		Rule:           sshRef(r.index),
		Users:          slices.Clone(r.users),
		Action:         wire.SSHAccept,
		AcceptEnv:      slices.Clone(r.acceptEnv),
		PortForwarding: r.portFwd,
	}
	if r.check {
		wr.Action, wr.CheckPeriod = wire.SSHCheck, r.period()
	}
	if len(r.recorders) > 0 {
		wr.Record = &wire.SSHRecording{FailOpen: r.failOpen, RecorderTags: slices.Clone(r.recorders)}
	} else if recordAll {
		wr.Record = &wire.SSHRecording{} // the coordinator records, fail closed
	}
	return wr
}

// period is r's check period with the default applied.
func (r *sshRule) period() time.Duration {
	if r.checkPeriod == 0 {
		return SSHCheckDefault
	}
	return r.checkPeriod
}

// isRecorder reports whether n carries one of r's recorder tags.
func (r *sshRule) isRecorder(n *Node) bool {
	for _, t := range r.recorders {
		if slices.Contains(n.Tags, t) {
			return true
		}
	}
	return false
}

// SSHTargets reports whether some ssh rule may target dst: whether
// SSHPolicyFor would return non-nil. It is cheap (no peers involved).
func (p *Policy) SSHTargets(dst *Node) bool {
	if len(p.ext.ssh) == 0 {
		return false
	}
	ds := p.nodeSubject(dst)
	for _, r := range p.ext.ssh {
		if r.mayTarget(ds) {
			return true
		}
	}
	return false
}

// SSHPeerRole says what peer is to each rule of dst's compiled policy
// (SSHPolicyFor): admitted as a source, and a recorder, per rule (i its
// index in the compiled policy's Rules, rule its name). It lets the caller update one peer's place in a
// policy without compiling it again.
func (p *Policy) SSHPeerRole(dst, peer *Node, fn func(i int, rule string, source, recorder bool)) {
	if len(p.ext.ssh) == 0 {
		return
	}
	ds, ps := p.nodeSubject(dst), p.nodeSubject(peer)
	i := 0
	for _, r := range p.ext.ssh {
		if !r.mayTarget(ds) {
			continue
		}
		fn(i, sshRef(r.index), r.admits(ps, ds), len(r.recorders) > 0 && r.isRecorder(peer))
		i++
	}
}

// SSHDecide says which rule lets src log in to dst as localUser: the first
// matching check rule if any (check wins: it is stricter), else the first
// matching accept rule. ok is false when no rule allows it.
func (p *Policy) SSHDecide(src, dst *Node, localUser string) (d SSHDecision, ok bool) {
	if len(p.ext.ssh) == 0 {
		return SSHDecision{}, false
	}
	ss, ds := p.nodeSubject(src), p.nodeSubject(dst)
	for _, r := range p.ext.ssh {
		if !r.admits(ss, ds) || !r.allowsUser(ss, localUser) {
			continue
		}
		if r.check {
			return SSHDecision{Rule: sshRef(r.index), Check: true, CheckPeriod: r.period()}, true
		}
		if !ok {
			d, ok = SSHDecision{Rule: sshRef(r.index)}, true
		}
	}
	return d, ok
}
