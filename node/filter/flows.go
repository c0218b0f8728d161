package filter

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// This file is flow accounting: the flows peers opened to this node (or
// through it, when it routes) that a rule accepted, with packets and bytes
// each way, for flow logs. The packet path only counts; CollectFlows,
// called periodically by the one goroutine that owns delivery (the
// engine's), turns what ended, what is due for a periodic update and the
// deny aggregates of past minutes into wire.FlowRecords.
//
// The table has the connection table's shape (conntrack.go): numShards
// shards of set-associative buckets of `ways` slots, a random hash seed,
// buckets allocated on a shard's first flow. Unlike the connection table
// it never evicts: a slot holds counts not yet reported, so a new flow
// that finds its bucket full is not recorded, only counted
// (Stats.FlowsDropped). Slots are freed by CollectFlows once reported.
//
// An inbound packet that is not a SYN looks for its flow first (known),
// and most denied packets have none, so a bitset (hints) spares them the
// shard lock: a flow sets the bit its hash picks when a rule accepts one
// of its packets, and known locks a shard only if its key's bit is set.
// collect clears the bits and sets those of the flows it keeps. A bit
// missing (cleared under a flow that is still being counted) only sends
// that flow's next packet through the rule lookup, which counts it in the
// same slot and sets the bit again; a bit set for no flow only costs the
// lock it would have cost anyway. outbound does not use the bits: a bit
// missing there would lose a packet of the flow.

// FlowConfig turns on flow accounting (NewWithFlows). Zero fields take
// the defaults.
type FlowConfig struct {
	// MaxFlows is how many accepted flows are tracked at once (default
	// 65536); past it new flows are counted in Stats.FlowsDropped.
	MaxFlows int
	// MaxDenies is how many deny aggregates are held at once (default
	// 4096); past it denied packets are counted in Stats.DeniesDropped.
	MaxDenies int
	// Update is how often a flow still open is reported (Update: true),
	// if it carried packets since it was last reported (default 60 s).
	Update time.Duration
	// CloseWait is how long a flow that saw a FIN or RST must be quiet
	// before it ends, so its last ACKs count in it (default 5 s).
	CloseWait time.Duration
	// TCPIdle (default 10 min) and Idle (UDP, ICMP and the others,
	// default 2 min) end a flow that carried no packet for that long.
	TCPIdle time.Duration
	Idle    time.Duration
}

// Flow accounting defaults.
const (
	defaultMaxDenies = 4096
	defaultUpdate    = time.Minute
	defaultCloseWait = 5 * time.Second
	defaultTCPIdle   = 10 * time.Minute
	defaultIdle      = 2 * time.Minute
	// maxDenyPorts is how many destination ports of one source, one
	// destination and protocol get their own deny aggregate in a minute;
	// the further ports of a scan share one aggregate with port 0.
	maxDenyPorts = 16
)

func (c *FlowConfig) defaults() {
	if c.MaxFlows <= 0 {
		c.MaxFlows = defaultMaxFlows
	}
	if c.MaxDenies <= 0 {
		c.MaxDenies = defaultMaxDenies
	}
	if c.Update <= 0 {
		c.Update = defaultUpdate
	}
	if c.CloseWait <= 0 {
		c.CloseWait = defaultCloseWait
	}
	if c.TCPIdle <= 0 {
		c.TCPIdle = defaultTCPIdle
	}
	if c.Idle <= 0 {
		c.Idle = defaultIdle
	}
}

// flowSlot is one accepted flow; seen == 0 means empty. key is the flow as
// the peer sent it: src is the peer.
type flowSlot struct {
	key                   flowKey
	start, seen, reported int64 // Unix nanoseconds; reported: last record (start before any)
	pktsIn, bytesIn       uint64
	pktsOut, bytesOut     uint64
	reportedPkts          uint64 // pktsIn+pktsOut at the last record
	gen                   uint64 // the ruleSet that last accepted it
	rule                  string
	closing               bool // FIN or RST seen either way
}

type flowBucket [ways]flowSlot

type flowShard struct {
	mu      sync.Mutex
	buckets []flowBucket
	_       [32]byte
}

// flowTable is the accepted flows and the deny aggregates.
type flowTable struct {
	cfg     FlowConfig
	seed    [7]uint64
	mask    uint64
	clock   func() time.Time
	now     atomic.Int64 // the clock at the last tick, Unix nanoseconds
	off     atomic.Bool  // flow logs turned off: record nothing new
	dropped atomic.Uint64
	shards  [numShards]flowShard
	denies  denyTable
	hints   []atomic.Uint64 // a bit per hintHash, see the file's comment
	hintMax uint64          // len(hints)*64 - 1: a power of two minus one
	hseed   [6]uint64       // hintHash's seed
}

// hintBits is how many hint bits the table keeps per flow slot.
const hintBits = 4

func newFlowTable(cfg FlowConfig, clock func() time.Time) *flowTable {
	cfg.defaults()
	per := (cfg.MaxFlows + numShards*ways - 1) / (numShards * ways)
	n := 1
	for n < per {
		n <<= 1
	}
	t := &flowTable{cfg: cfg, mask: uint64(n - 1), clock: clock}
	t.tick()
	for i := range t.seed {
		t.seed[i] = rand.Uint64()
	}
	for i := range t.hseed {
		t.hseed[i] = rand.Uint64()
	}
	t.denies.init(cfg.MaxDenies)
	t.hints = make([]atomic.Uint64, numShards*n*ways*hintBits/64)
	t.hintMax = uint64(len(t.hints)*64 - 1)
	return t
}

// hintHash picks k's hint bit. It is cheaper than hashKey (one multiply
// for IPv4, whose two addresses fit one word), as a denied packet pays it.
// It takes the key's fields, not a flowKey: known calls it before
// building one, which it needs only when the bit is set.
func (t *flowTable) hintHash(src, dst u128, sport, dport uint16, proto uint8, v6 bool) uint64 {
	a := src.lo<<32 ^ dst.lo
	if v6 {
		a = mum(src.hi^t.hseed[2], src.lo^t.hseed[3]) ^ mum(dst.hi^t.hseed[4], dst.lo^t.hseed[5])
	}
	tail := uint64(sport)<<32 | uint64(dport)<<16 | uint64(proto)
	return mum(a^t.hseed[0], tail^t.hseed[1])
}

// hinted reports whether the hint bit of hint hash h is set.
func (t *flowTable) hinted(h uint64) bool {
	i := h & t.hintMax
	return t.hints[i/64].Load()&(1<<(i%64)) != 0
}

// hint sets the hint bit of hint hash h.
func (t *flowTable) hint(h uint64) {
	i := h & t.hintMax
	if w := &t.hints[i/64]; w.Load()&(1<<(i%64)) == 0 {
		w.Or(1 << (i % 64))
	}
}

// tick reads the clock for the packet path.
func (t *flowTable) tick() {
	n := t.clock().UnixNano()
	if n == 0 {
		n = 1 // seen == 0 means an empty slot
	}
	t.now.Store(n)
}

// bucketOf returns the shard and bucket index of a key with hash h.
func (t *flowTable) bucketOf(h uint64) (*flowShard, uint64) {
	return &t.shards[h>>(64-6)], h & t.mask
}

// known counts a packet of a flow that the rules rs accepted already and
// reports whether it was one: the caller accepts it without a lookup.
func (t *flowTable) known(p *packet, n int, rs *ruleSet) bool {
	if rs == nil {
		return false
	}
	if !t.hinted(t.hintHash(p.src, p.dst, p.sport, p.dport, p.proto, p.v6)) {
		return false
	}
	k := flowKey{src: p.src, dst: p.dst, sport: p.sport, dport: p.dport, proto: p.proto, v6: p.v6}
	sh, bi := t.bucketOf(hashKey(&t.seed, &k))
	sh.mu.Lock()
	if sh.buckets != nil {
		b := &sh.buckets[bi]
		for i := range b {
			if s := &b[i]; s.seen != 0 && s.key == k {
				if s.gen != rs.gen {
					break
				}
				s.countIn(p, n, t.now.Load())
				sh.mu.Unlock()
				return true
			}
		}
	}
	sh.mu.Unlock()
	return false
}

// countIn counts a packet from the peer.
func (s *flowSlot) countIn(p *packet, n int, now int64) {
	s.seen = now
	s.pktsIn++
	s.bytesIn += uint64(n)
	if p.tcpFlags&(tcpFIN|tcpRST) != 0 {
		s.closing = true
	}
}

// inbound counts a packet a rule accepted (rs is the rule set that did).
func (t *flowTable) inbound(p *packet, n int, rs *ruleSet, port int) {
	now := t.now.Load()
	k := flowKey{src: p.src, dst: p.dst, sport: p.sport, dport: p.dport, proto: p.proto, v6: p.v6}
	sh, bi := t.bucketOf(hashKey(&t.seed, &k))
	sh.mu.Lock()
	if sh.buckets == nil {
		sh.buckets = make([]flowBucket, t.mask+1)
	}
	b := &sh.buckets[bi]
	var s, free *flowSlot
	for i := range b {
		if b[i].seen == 0 {
			if free == nil {
				free = &b[i]
			}
		} else if b[i].key == k {
			s = &b[i]
			break
		}
	}
	if s == nil {
		if free == nil {
			sh.mu.Unlock()
			t.dropped.Add(1)
			return
		}
		s = free
		*s = flowSlot{key: k, start: now, reported: now, rule: rs.ruleOf(p.v6, p.proto, p.src, p.dst, port)}
	}
	s.gen = rs.gen
	s.countIn(p, n, now)
	sh.mu.Unlock()
	t.hint(t.hintHash(k.src, k.dst, k.sport, k.dport, k.proto, k.v6))
}

// outbound counts a packet this node sends if it answers a recorded flow,
// and reports whether it did and the rules rs accepted that flow.
func (t *flowTable) outbound(p *packet, n int, rs *ruleSet) bool {
	current := false
	k := flowKey{src: p.dst, dst: p.src, sport: p.dport, dport: p.sport, proto: p.proto, v6: p.v6}
	sh, bi := t.bucketOf(hashKey(&t.seed, &k))
	sh.mu.Lock()
	if sh.buckets != nil {
		b := &sh.buckets[bi]
		for i := range b {
			if s := &b[i]; s.seen != 0 && s.key == k {
				s.seen = t.now.Load()
				s.pktsOut++
				s.bytesOut += uint64(n)
				if p.tcpFlags&(tcpFIN|tcpRST) != 0 {
					s.closing = true
				}
				current = rs != nil && s.gen == rs.gen
				break
			}
		}
	}
	sh.mu.Unlock()
	return current
}

// ended reports whether s has ended at now.
func (t *flowTable) ended(s *flowSlot, now int64) bool {
	idle := now - s.seen
	switch {
	case s.closing:
		return idle >= int64(t.cfg.CloseWait)
	case s.key.proto == protoTCP:
		return idle >= int64(t.cfg.TCPIdle)
	}
	return idle >= int64(t.cfg.Idle)
}

// collect appends the records due at now: flows that ended (all open ones
// when final), updates of open flows that carried packets for Update since
// their last record, and deny aggregates of minutes before now's (all of
// them when final).
func (t *flowTable) collect(now int64, final bool, out []wire.FlowRecord) []wire.FlowRecord {
	for i := range t.hints {
		t.hints[i].Store(0)
	}
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for bi := range sh.buckets {
			b := &sh.buckets[bi]
			for si := range b {
				s := &b[si]
				if s.seen == 0 {
					continue
				}
				switch {
				case final || t.ended(s, now):
					out = append(out, s.record(false))
					*s = flowSlot{}
				case now-s.reported >= int64(t.cfg.Update) && s.pktsIn+s.pktsOut != s.reportedPkts:
					out = append(out, s.record(true))
					s.reported = now
					s.reportedPkts = s.pktsIn + s.pktsOut
				}
				if s.seen != 0 {
					t.hint(t.hintHash(s.key.src, s.key.dst, s.key.sport, s.key.dport, s.key.proto, s.key.v6))
				}
			}
		}
		sh.mu.Unlock()
	}
	return t.denies.collect(now, final, out)
}

// record is the slot as a flow record (no ID or SrcNode: the caller knows
// them). Counts are totals since the flow's start.
func (s *flowSlot) record(update bool) wire.FlowRecord {
	return wire.FlowRecord{
		Start: time.Unix(0, s.start), End: time.Unix(0, s.seen), Update: update,
		Src:   netip.AddrPortFrom(toAddr(s.key.src, s.key.v6), s.key.sport),
		Dst:   netip.AddrPortFrom(toAddr(s.key.dst, s.key.v6), s.key.dport),
		Proto: s.key.proto, PacketsIn: s.pktsIn, BytesIn: s.bytesIn, PacketsOut: s.pktsOut, BytesOut: s.bytesOut,
		Verdict: "accept", Rule: s.rule,
	}
}

// count returns the number of flows held.
func (t *flowTable) count() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for bi := range sh.buckets {
			for si := range sh.buckets[bi] {
				if sh.buckets[bi][si].seen != 0 {
					n++
				}
			}
		}
		sh.mu.Unlock()
	}
	return n
}

// toAddr is fromAddr's inverse.
func toAddr(a u128, v6 bool) netip.Addr {
	if !v6 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(a.lo))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], a.hi)
	binary.BigEndian.PutUint64(b[8:], a.lo)
	return netip.AddrFrom16(b)
}
