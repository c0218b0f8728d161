package filter

import (
	"math/bits"
	"math/rand/v2"
	"sync"
	"time"
)

// This file is the connection table: the flows this node started, so that
// Inbound can accept their replies. It is a fixed-capacity, set-associative
// hash table: numShards shards, each a mutex and a power-of-two array of
// buckets of `ways` slots. A key hashes (with a per-table random seed, so
// peers cannot aim at one bucket) to one bucket; inserting into a full
// bucket reuses an expired slot or evicts the least recently seen one. The
// memory is therefore fixed by the capacity, whatever the traffic, and no
// operation allocates once a shard's buckets exist (they are allocated on the
// shard's first insert, so an idle filter costs little).

const (
	numShards       = 64
	ways            = 8
	defaultMaxFlows = 65536
)

// Timeouts is how long a tracked flow lives without packets.
type timeouts struct {
	tcpOpening     time.Duration // our SYN sent, no answer yet
	tcpEstablished time.Duration // the peer has answered
	tcpClosing     time.Duration // FIN or RST seen either way
	udp            time.Duration // UDP and the other protocols with ports
	icmp           time.Duration // ICMP echo
}

// defaultTimeouts: 2 minutes idle for UDP and unanswered TCP, 30 s for ICMP
// echo. An answered TCP connection gets 24 h: an idle SSH session whose server
// speaks first after a long pause would otherwise hang, and the table is
// bounded and evicts the least recently seen flows anyway.
var defaultTimeouts = timeouts{
	tcpOpening:     2 * time.Minute,
	tcpEstablished: 24 * time.Hour,
	tcpClosing:     30 * time.Second,
	udp:            2 * time.Minute,
	icmp:           30 * time.Second,
}

// flowState is the TCP state a slot tracks (other protocols stay opening).
type flowState uint8

const (
	stateOpening flowState = iota
	stateEstablished
	stateClosing
)

// flowKey is a flow as this node sent it: src is this node.
type flowKey struct {
	src, dst     u128
	sport, dport uint16
	proto        uint8
	v6           bool
}

// slot is one table entry; seen == 0 means empty.
type slot struct {
	key   flowKey
	seen  int64 // last packet either way, Unix nanoseconds
	state flowState
}

type bucket [ways]slot

// shard is a lock and its buckets, padded against false sharing.
type shard struct {
	mu      sync.Mutex
	buckets []bucket
	_       [32]byte
}

// tracker is the connection table.
type tracker struct {
	seed   [7]uint64
	mask   uint64 // buckets per shard - 1
	now    func() time.Time
	to     timeouts
	shards [numShards]shard
}

// newTracker makes a table for at least maxFlows flows (rounded up to fill
// every shard with a power of two of buckets).
func newTracker(maxFlows int, now func() time.Time, to timeouts) *tracker {
	per := (maxFlows + numShards*ways - 1) / (numShards * ways)
	n := 1
	for n < per {
		n <<= 1
	}
	t := &tracker{mask: uint64(n - 1), now: now, to: to}
	for i := range t.seed {
		t.seed[i] = rand.Uint64()
	}
	return t
}

// capacity is the most flows the table can hold.
func (t *tracker) capacity() int { return numShards * int(t.mask+1) * ways }

// clock returns the current time in Unix nanoseconds, never 0.
func (t *tracker) clock() int64 {
	n := t.now().UnixNano()
	if n == 0 {
		n = 1
	}
	return n
}

// mum is a 64x64->128 multiply folded to 64 bits (wyhash's mixer).
func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hash mixes the whole key with the table's seed.
func (t *tracker) hash(k *flowKey) uint64 { return hashKey(&t.seed, k) }

// hashKey mixes the whole key with a table's random seed.
func hashKey(seed *[7]uint64, k *flowKey) uint64 {
	var v6 uint64
	if k.v6 {
		v6 = 1
	}
	tail := uint64(k.sport)<<32 | uint64(k.dport)<<16 | uint64(k.proto)<<8 | v6
	a := mum(k.src.hi^seed[0], k.src.lo^seed[1])
	b := mum(k.dst.hi^seed[2], k.dst.lo^seed[3])
	c := mum(tail^seed[4], seed[5])
	return mum(a^c, b^seed[6])
}

// bucketOf returns the key's shard and bucket index.
func (t *tracker) bucketOf(k *flowKey) (*shard, uint64) {
	h := t.hash(k)
	return &t.shards[h>>(64-6)], h & t.mask
}

// timeout is how long a slot lives without packets.
func (t *tracker) timeout(s *slot) int64 {
	switch {
	case s.key.proto == protoTCP && s.state == stateEstablished:
		return int64(t.to.tcpEstablished)
	case s.key.proto == protoTCP && s.state == stateClosing:
		return int64(t.to.tcpClosing)
	case s.key.proto == protoTCP:
		return int64(t.to.tcpOpening)
	case isICMPProto(s.key.proto):
		return int64(t.to.icmp)
	}
	return int64(t.to.udp)
}

// live reports whether s holds a flow that has not expired at now.
func (t *tracker) live(s *slot, now int64) bool {
	return s.seen != 0 && now-s.seen <= t.timeout(s)
}

// find returns the slot holding k, live or not, or nil. The shard lock
// must be held. It reads no clock, so lookups that miss (most dropped
// packets) never pay for one.
func find(sh *shard, bi uint64, k *flowKey) *slot {
	if sh.buckets == nil {
		return nil
	}
	b := &sh.buckets[bi]
	for i := range b {
		if s := &b[i]; s.seen != 0 && s.key == *k {
			return s
		}
	}
	return nil
}

// findLive is find, emptying the slot and returning nil if it has expired
// at now.
func (t *tracker) findLive(sh *shard, bi uint64, k *flowKey, now int64) *slot {
	s := find(sh, bi, k)
	if s != nil && !t.live(s, now) {
		*s = slot{}
		return nil
	}
	return s
}

// apply moves a slot's TCP state on a packet with flags; reply reports
// that the packet came from the peer.
func apply(s *slot, flags uint8, reply bool) {
	if s.key.proto != protoTCP {
		return
	}
	switch {
	case flags&(tcpFIN|tcpRST) != 0:
		s.state = stateClosing
	case reply && s.state == stateOpening:
		s.state = stateEstablished
	}
}

// refresh updates a live flow k after this node sent a packet on it with
// the given TCP flags and reports whether it was tracked.
func (t *tracker) refresh(k *flowKey, flags uint8, now int64) bool {
	sh, bi := t.bucketOf(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := t.findLive(sh, bi, k, now)
	if s == nil {
		return false
	}
	s.seen = now
	apply(s, flags, false)
	return true
}

// insert starts tracking k (or restarts it, if tracked) in the opening state.
func (t *tracker) insert(k *flowKey, now int64) {
	sh, bi := t.bucketOf(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.buckets == nil {
		sh.buckets = make([]bucket, t.mask+1)
	}
	s := find(sh, bi, k)
	if s == nil {
		s = t.victim(&sh.buckets[bi], now)
	}
	*s = slot{key: *k, seen: now, state: stateOpening}
}

// victim picks the slot to overwrite: an empty or expired one, else the
// least recently seen.
func (t *tracker) victim(b *bucket, now int64) *slot {
	v := &b[0]
	for i := range b {
		s := &b[i]
		if !t.live(s, now) {
			return s
		}
		if s.seen < v.seen {
			v = s
		}
	}
	return v
}

// reply reports whether k (a flow as this node sent it) is tracked, and if
// so records the peer's packet with the given TCP flags.
func (t *tracker) reply(k *flowKey, flags uint8) bool {
	sh, bi := t.bucketOf(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := find(sh, bi, k)
	if s == nil {
		return false
	}
	now := t.clock()
	if !t.live(s, now) {
		*s = slot{}
		return false
	}
	s.seen = now
	apply(s, flags, true)
	return true
}

// tracked reports whether k is tracked, changing nothing.
func (t *tracker) tracked(k *flowKey) bool {
	sh, bi := t.bucketOf(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := find(sh, bi, k)
	return s != nil && t.live(s, t.clock())
}

// count returns the number of live flows. It locks each shard in turn; it
// is for status output, not the packet path.
func (t *tracker) count() int {
	now := t.clock()
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for bi := range sh.buckets {
			for si := range sh.buckets[bi] {
				if t.live(&sh.buckets[bi][si], now) {
					n++
				}
			}
		}
		sh.mu.Unlock()
	}
	return n
}
