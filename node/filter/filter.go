// Package filter is the destination-side stateful packet filter every Warren
// node runs on packets arriving from peers over WireGuard, before they reach
// the userspace netstack or a TUN device.
//
// It denies by default. An inbound packet is accepted only if one of the
// coordinator's rules (wire.FilterRule) admits its source, destination,
// destination port and protocol, or if it answers a flow this node started
// (connection tracking fed by Outbound). Rules are compiled into an
// immutable lookup structure and swapped atomically, so netmap updates never
// block the packet path, and every inbound packet that is not a reply to
// this node's own flow is checked against the current rules: revoking access
// takes effect on the very next packet, including mid-connection TCP
// segments (not only SYNs).
//
// With flow accounting (NewWithFlows, flows.go) it also counts the flows
// its rules accept and aggregates what it denies, for flow logs; delivering
// them is its caller's job (CollectFlows), never the packet path's.
//
// The filter must never panic on, allocate for, or trust the bytes it is
// handed: they come from peers. It never modifies packets and does no I/O.
package filter

import (
	"sync/atomic"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// Verdict is the filter's decision on a packet.
type Verdict int

// Verdicts. Drop is the zero value: deny by default.
const (
	// Drop: the packet must not reach the stack.
	Drop Verdict = iota
	// Accept: the packet may be delivered to the stack.
	Accept
)

// String names the verdict for logs.
func (v Verdict) String() string {
	switch v {
	case Drop:
		return "drop"
	case Accept:
		return "accept"
	}
	return "unknown"
}

// Reason says why a packet was dropped, or why it was accepted, for flow
// logs and metrics. Values are stable strings; never rename them.
type Reason string

// Reasons returned by Inbound. The first three come with Accept.
const (
	// ReasonRule: a rule admits the packet.
	ReasonRule Reason = "rule"
	// ReasonReply: the packet answers a flow this node started.
	ReasonReply Reason = "reply"
	// ReasonRelated: an ICMP error about a flow this node started.
	ReasonRelated Reason = "related"
	// ReasonNoRule: no rule admits it and it answers none of our flows.
	ReasonNoRule Reason = "no-rule"
	// ReasonMalformed: not a well-formed IPv4 or IPv6 packet (truncated,
	// bad lengths, unknown or too many IPv6 extension headers, ...).
	ReasonMalformed Reason = "malformed"
	// ReasonFragment: a non-first fragment (no ports to check) that no
	// rule admits on every port.
	ReasonFragment Reason = "fragment"
)

// numAcceptReasons is how many of reasons (the first ones) come with Accept.
const numAcceptReasons = 3

// reasons lists every Reason, indexed by reasonIndex.
var reasons = [...]Reason{ReasonRule, ReasonReply, ReasonRelated, ReasonNoRule, ReasonMalformed, ReasonFragment}

// Indexes into reasons of the reasons the packet path switches on.
const (
	reasonIndexRule     = 0
	reasonIndexNoRule   = 3
	reasonIndexFragment = 5
)

// reasonIndex maps a Reason to its counter.
func reasonIndex(r Reason) int {
	switch r {
	case ReasonRule:
		return reasonIndexRule
	case ReasonReply:
		return 1
	case ReasonRelated:
		return 2
	case ReasonNoRule:
		return reasonIndexNoRule
	case ReasonMalformed:
		return 4
	}
	return reasonIndexFragment
}

// Stats are the filter's counters, for status output and metrics.
type Stats struct {
	// Accepted counts accepted inbound packets by reason (rule, reply,
	// related).
	Accepted map[Reason]uint64
	// Dropped counts dropped inbound packets by reason (no-rule, malformed,
	// fragment).
	Dropped map[Reason]uint64
	// Flows is the number of flows this node started that are tracked now.
	Flows int
	// MaxFlows is the connection table's capacity.
	MaxFlows int
	// With flow accounting (NewWithFlows): the accepted flows and deny
	// aggregates held now, and what the full tables could not record.
	FlowsRecorded, DenyAggregates int
	FlowsDropped, DeniesDropped   uint64
}

// config holds what tests change; New uses the defaults.
type config struct {
	now      func() time.Time
	maxFlows int
	timeouts timeouts
	flows    *FlowConfig // nil: no flow accounting
}

// Filter is the inbound packet filter of one node. It is safe for
// concurrent use: Inbound and Outbound may run on many goroutines while
// SetRules replaces the rules. Create it with New; the zero Filter drops
// every inbound packet and tracks no flows.
//
// Connection tracking holds only flows this node started, so SetRules never
// has to flush anything: a TCP flow is tracked from this node's SYN; a UDP
// (or other ported protocol) flow or ICMP echo from this node's first packet
// on it, but only if the rules would not already admit the peer's answer
// (so replies this node sends to flows the peer opened under the rules do
// not create state that would outlive a revocation). One window remains: a
// UDP packet accepted under the old rules whose answer this node sends after
// the revocation starts tracking that tuple. Non-first fragments are never
// matched to tracked flows.
//
// Idle timeouts: 2 minutes for UDP and for TCP until the peer answers our
// SYN, 24 hours for an answered TCP connection, 30 seconds after a FIN or
// RST and for ICMP echo. The table holds 65536 flows; when a bucket is full
// the least recently seen flow is evicted, so a flood of new flows costs no
// memory beyond the fixed table.
//
// Costs per packet, none of which allocate: parsing is O(1); the rule
// lookup is O(L · log P · log S) for L distinct destination prefix lengths
// (1 or 2 in practice, at most the address width), P port segments and S
// source ranges (see rules.go), so O(log² n) in the number of rules; the
// connection table is O(1): one hash, one shard lock, an 8-slot bucket.
type Filter struct {
	rules   atomic.Pointer[ruleSet]
	gens    atomic.Uint64 // the last ruleSet.gen given
	ct      *tracker
	flows   *flowTable // nil: no flow accounting (flows.go)
	counter [len(reasons)]atomic.Uint64
}

// New returns a filter enforcing rules (nil or empty: deny everything) with
// a connection table of 65536 flows.
func New(rules []wire.FilterRule) *Filter {
	return newFilter(rules, config{})
}

// NewWithFlows is New with flow accounting (flows.go, denies.go): every
// flow a rule accepts is counted both ways and every denied packet
// aggregated, for CollectFlows. Accounting costs an accepted packet one
// more hash and shard lock (a packet of a flow already accepted under the
// current rules then skips the rule lookup), a denied packet one or two
// hashes and one compare-and-swap (which replaces the drop counter's
// atomic add), and a flow's first packet one rule lookup per distinct
// rule id.
func NewWithFlows(rules []wire.FilterRule, fc FlowConfig) *Filter {
	return newFilter(rules, config{flows: &fc})
}

// newFilter is New with test settings; zero fields take the defaults.
func newFilter(rules []wire.FilterRule, cfg config) *Filter {
	if cfg.now == nil {
		cfg.now = time.Now
	}
	if cfg.maxFlows <= 0 {
		cfg.maxFlows = defaultMaxFlows
	}
	if cfg.timeouts == (timeouts{}) {
		cfg.timeouts = defaultTimeouts
	}
	f := &Filter{ct: newTracker(cfg.maxFlows, cfg.now, cfg.timeouts)}
	if cfg.flows != nil {
		f.flows = newFlowTable(*cfg.flows, cfg.now)
	}
	f.SetRules(rules)
	return f
}

// SetRules replaces the rules atomically. Packets already being decided
// finish under the old rules; every later packet sees the new ones. The
// rules slice is not retained.
func (f *Filter) SetRules(rules []wire.FilterRule) {
	rs := compileIDs(rules, f.flows != nil)
	rs.gen = f.gens.Add(1)
	f.rules.Store(rs)
}

// Inbound decides a packet arriving from a peer: a raw IPv4 or IPv6 packet
// as WireGuard hands it to the TUN. It never modifies or retains pkt and
// does not allocate.
func (f *Filter) Inbound(pkt []byte) (Verdict, Reason) {
	var p packet
	if !p.parse(pkt, false) {
		f.counter[reasonIndex(ReasonMalformed)].Add(1)
		return Drop, ReasonMalformed
	}
	rs := f.rules.Load()
	fl := f.flows
	if fl != nil && fl.off.Load() {
		fl = nil
	}
	// A packet of a flow a rule accepted under these very rules is
	// accepted again without the rule lookup: the rules are immutable,
	// so the answer cannot have changed (flowTable.known). A TCP SYN
	// opens a flow, so it skips that lookup: scans are mostly SYNs.
	if fl != nil && !p.frag && p.tcpFlags&tcpSYN == 0 && fl.known(&p, len(pkt), rs) {
		f.counter[reasonIndex(ReasonRule)].Add(1)
		return Accept, ReasonRule
	}
	v, r, port := f.decide(&p, rs)
	ri := reasonIndex(r)
	if fl != nil {
		switch ri {
		case reasonIndexRule:
			fl.inbound(&p, len(pkt), rs, port)
		case reasonIndexNoRule, reasonIndexFragment:
			if fl.denies.add(&p, len(pkt), ri, fl.now.Load()) {
				return v, r // its aggregate counts it for Stats too (denies.go)
			}
		}
	}
	f.counter[ri].Add(1)
	return v, r
}

// decide is Inbound's verdict on a parsed packet under rules rs, with the
// port it looked up (-1: none).
func (f *Filter) decide(p *packet, rs *ruleSet) (Verdict, Reason, int) {
	if p.frag {
		if rs.allows(p.v6, p.proto, p.src, p.dst, -1) {
			return Accept, ReasonRule, -1
		}
		return Drop, ReasonFragment, -1
	}
	port := -1
	if hasPorts(p.proto) {
		port = int(p.dport)
	}
	if rs.allows(p.v6, p.proto, p.src, p.dst, port) {
		return Accept, ReasonRule, port
	}
	v, r := f.untracked(p)
	return v, r, port
}

// untracked decides a packet no rule accepts: a reply or an ICMP error
// about a flow this node started, or no-rule.
func (f *Filter) untracked(p *packet) (Verdict, Reason) {
	if f.ct == nil {
		return Drop, ReasonNoRule
	}
	if hasPorts(p.proto) || p.echoReply() {
		k := flowKey{src: p.dst, dst: p.src, sport: p.dport, dport: p.sport, proto: p.proto, v6: p.v6}
		if f.ct.reply(&k, p.tcpFlags) {
			return Accept, ReasonReply
		}
	}
	if p.icmpError() && f.related(p) {
		return Accept, ReasonRelated
	}
	return Drop, ReasonNoRule
}

// related reports whether the ICMP error p quotes a packet of a flow this
// node started (destination unreachable, packet too big, time exceeded,
// parameter problem): the quoted packet must come from the address p was
// sent to, and its tuple must be tracked.
func (f *Filter) related(p *packet) bool {
	var q packet
	if !q.parse(p.l4[icmpHeaderLen:], true) || q.frag || q.v6 != p.v6 || q.src != p.dst {
		return false
	}
	if !hasPorts(q.proto) && !q.echoRequest() {
		return false
	}
	k := flowKey{src: q.src, dst: q.dst, sport: q.sport, dport: q.dport, proto: q.proto, v6: q.v6}
	return f.ct.tracked(&k)
}

// Outbound records a packet this node sends to a peer so that replies to it
// are accepted by Inbound. It never drops, modifies or retains pkt, and
// ignores what it cannot parse.
func (f *Filter) Outbound(pkt []byte) {
	if f.ct == nil {
		return
	}
	var p packet
	if !p.parse(pkt, false) || p.frag {
		return
	}
	if f.flows != nil && !f.flows.off.Load() && f.flows.outbound(&p, len(pkt), f.rules.Load()) &&
		p.tcpFlags&(tcpSYN|tcpFIN|tcpRST) == 0 {
		// This node answers a flow the peer opened that the current
		// rules accept: the rules admit the peer's side already, so
		// tracking would add nothing (a UDP answer would not be
		// tracked; a TCP segment that neither opens nor closes can only
		// refresh the rare entry of a simultaneous open, which then
		// expires sooner, never later).
		return
	}
	if !hasPorts(p.proto) && !p.echoRequest() {
		return
	}
	now := f.ct.clock()
	k := flowKey{src: p.src, dst: p.dst, sport: p.sport, dport: p.dport, proto: p.proto, v6: p.v6}
	if p.proto == protoTCP {
		if p.tcpFlags&(tcpSYN|tcpACK) == tcpSYN {
			f.ct.insert(&k, now)
			return
		}
		f.ct.refresh(&k, p.tcpFlags, now)
		return
	}
	if f.ct.refresh(&k, 0, now) {
		return
	}
	port := -1
	if hasPorts(p.proto) {
		port = int(p.sport)
	}
	if !f.rules.Load().allows(p.v6, p.proto, p.dst, p.src, port) {
		f.ct.insert(&k, now)
	}
}

// Stats returns the counters. It walks the connection table under its
// locks, so call it for status output, not per packet.
func (f *Filter) Stats() Stats {
	s := Stats{Accepted: map[Reason]uint64{}, Dropped: map[Reason]uint64{}}
	var counts [len(reasons)]uint64
	if f.flows != nil {
		f.flows.denies.packets(&counts)
	}
	for i, r := range reasons {
		n := counts[i] + f.counter[i].Load()
		if i < numAcceptReasons {
			s.Accepted[r] = n
		} else {
			s.Dropped[r] = n
		}
	}
	if f.ct != nil {
		s.Flows = f.ct.count()
		s.MaxFlows = f.ct.capacity()
	}
	if f.flows != nil {
		s.FlowsRecorded, s.DenyAggregates = f.flows.count(), f.flows.denies.count()
		s.FlowsDropped, s.DeniesDropped = f.flows.dropped.Load(), f.flows.denies.dropped.Load()
	}
	return s
}

// SetFlowLogging turns flow accounting on or off (the policy's flowLogs);
// while off nothing new is recorded and the next CollectFlows reports
// every flow and aggregate held. A filter made by New ignores it.
func (f *Filter) SetFlowLogging(on bool) {
	if f.flows != nil {
		f.flows.off.Store(!on)
	}
}

// CollectFlows returns the flow records due now: accepted flows that ended
// (FIN or RST then FlowConfig.CloseWait of quiet, or idle), periodic
// updates (Update: true) of flows still open, and the deny aggregates of
// the minutes before this one; with final (the filter is going away) or
// while flow logging is off, every flow and aggregate held. Counts are
// totals since the flow's start. Records have no ID or SrcNode: the
// caller, which knows the node and its peers, sets them. A filter without
// flow accounting returns nil. It walks the whole table under its locks:
// call it every few seconds from one goroutine, not per packet.
func (f *Filter) CollectFlows(final bool) []wire.FlowRecord {
	if f.flows == nil {
		return nil
	}
	f.flows.tick()
	return f.flows.collect(f.flows.now.Load(), final || f.flows.off.Load(), nil)
}

// TickFlows reads the clock for flow accounting. Reading it per packet
// would cost more than the rest of the accounting together, so flow
// records carry times of the last tick: call it about every second (the
// engine's flow goroutine does); CollectFlows ticks too.
func (f *Filter) TickFlows() {
	if f.flows != nil {
		f.flows.tick()
	}
}
