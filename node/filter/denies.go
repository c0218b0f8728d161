package filter

import (
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// This file aggregates denied packets for flow logs: one aggregate per
// source address, destination address, destination port, protocol, reason
// and minute, with exact packet and byte counts. A scan is bounded twice
// over: past maxDenyPorts distinct ports from one source to one
// destination in a minute, the further ports share one aggregate whose
// port is 0; and the table holds at most FlowConfig.MaxDenies aggregates,
// past which denied packets are only counted (Stats.DeniesDropped).
//
// Counting a denied packet is the packet path of every scan and flood, and
// wireguard-go calls Inbound from several goroutines, so counting an
// aggregate that exists takes no lock and one atomic compare-and-swap:
//
//   - The aggregates live in a fixed array of buckets of denyWays slots,
//     about twice MaxDenies slots in all, allocated up front. A key (packed
//     into five words, denyKey) hashes with the table's random seed (peers
//     cannot aim at one bucket) to one bucket.
//   - A slot's word holds a valid bit, a generation, and the packets and
//     bytes counted since the slot's last fold. Its key words are written
//     only while the slot is invalid, and only by the holder of the table's
//     mutex (mu), which alone creates, folds and removes aggregates.
//   - The packet path loads a slot's word, compares the key words, and adds
//     its packet to the word with a compare-and-swap of the word it loaded.
//     If the slot was removed or reused meanwhile the word changed (its
//     valid bit, or its generation, which every reuse advances), the swap
//     fails and the lookup starts again; so a packet is never counted in
//     another key's aggregate. (The generation has 11 bits: a reader would
//     have to stall between its load and its swap while collect frees and
//     a new key reuses that one slot 2048 times, and find the same counts.)
//   - The packet path defers to mu when the word's counts would overflow
//     (under mu they are folded into the slot's wide counters), when its clock
//     differs from the aggregate's last (about once a second per
//     aggregate: last is written under mu only), and when it finds no
//     aggregate: under mu the lookup is repeated (another goroutine may just
//     have created it), then the scan rule (ports, a small map) and the
//     MaxDenies bound (held) decide on authoritative state. A new aggregate
//     whose bucket is full is dropped and counted like one past MaxDenies.
//   - A scan's further ports find the shared aggregate on the packet path
//     too: it exists only once its pair has used up maxDenyPorts, after
//     which no port of that pair gets an aggregate of its own that minute.
//   - The aggregates double as the counters of denied packets: a recorded
//     packet is not also counted in Filter.counter, and Stats adds the
//     aggregates (held, and reported by collect) to it. So the accounting
//     replaces an atomic add the filter would do anyway.
//
// A packet that read the flow clock just before a tick into the next
// minute can arrive after collect reported its minute: it makes a second
// aggregate of that minute, reported at the next collect. Counts stay
// exact.

const (
	denyWays = 8

	// A slot's word: valid bit, generation, packets, bytes.
	wordValid      = uint64(1) << 63
	wordGenShift   = 52
	wordGenMask    = uint64(1)<<11 - 1
	wordCountShift = 32
	wordMaxCount   = uint64(1)<<20 - 1
	wordMaxBytes   = uint64(1)<<32 - 1
	wordCounts     = uint64(1)<<wordGenShift - 1 // the packets and bytes bits
)

// denyKey identifies an aggregate, packed into words for the lock-free
// compare: source (hi, lo), destination (hi, lo), and the minute, port,
// protocol, reason and flags (meta, see packDeny).
type denyKey [5]uint64

// The meta word's fields.
const (
	metaOther       = 1 << 0 // the shared aggregate of a scan's further ports (dport 0)
	metaV6          = 1 << 1
	metaReasonShift = 2 // 3 bits
	metaProtoShift  = 5 // 8 bits
	metaPortShift   = 13
	metaMinuteShift = 29
	// metaPair keeps the fields of the (source, destination, minute,
	// protocol, family) pair whose distinct ports the scan rule counts.
	metaPair = (1<<64-1)&^(1<<metaMinuteShift-1) | 0xff<<metaProtoShift | metaV6
)

// pack sets k to the key of a packet's aggregate; reason indexes reasons.
// It writes k in place: building the array elsewhere and copying it costs
// the packet path a stalled load (the copy reads in 16 bytes what was
// written in 8).
func (k *denyKey) pack(p *packet, reason int, minute int64, dport uint16) {
	meta := uint64(minute)<<metaMinuteShift | uint64(dport)<<metaPortShift | uint64(p.proto)<<metaProtoShift |
		uint64(reason)<<metaReasonShift
	if p.v6 {
		meta |= metaV6
	}
	k[0], k[1], k[2], k[3], k[4] = p.src.hi, p.src.lo, p.dst.hi, p.dst.lo, meta
}

func (k *denyKey) minute() int64 { return int64(k[4] >> metaMinuteShift) }
func (k *denyKey) dport() uint16 { return uint16(k[4] >> metaPortShift) }
func (k *denyKey) proto() uint8  { return uint8(k[4] >> metaProtoShift) }
func (k *denyKey) reason() int   { return int(k[4]>>metaReasonShift) & 7 }
func (k *denyKey) v6() bool      { return k[4]&metaV6 != 0 }
func (k *denyKey) isOther() bool { return k[4]&metaOther != 0 }
func (k *denyKey) pair() denyKey { return denyKey{k[0], k[1], k[2], k[3], k[4] & metaPair} }
func (k *denyKey) other() denyKey {
	return denyKey{k[0], k[1], k[2], k[3], k[4]&^(0xffff<<metaPortShift) | metaOther}
}
func (k *denyKey) src() netip.Addr { return toAddr(u128{k[0], k[1]}, k.v6()) }
func (k *denyKey) dst() netip.Addr { return toAddr(u128{k[2], k[3]}, k.v6()) }

// denySlot is one aggregate (see the file's comment for who writes what).
type denySlot struct {
	word         atomic.Uint64
	key          [5]atomic.Uint64
	last         atomic.Int64 // the latest clock counted; written under mu
	first        int64        // under mu
	count, bytes uint64       // folded from word, under mu
}

// holds reports whether s's key words are k.
func (s *denySlot) holds(k *denyKey) bool {
	return s.key[4].Load() == k[4] && s.key[1].Load() == k[1] && s.key[3].Load() == k[3] &&
		s.key[0].Load() == k[0] && s.key[2].Load() == k[2]
}

func (s *denySlot) loadKey() denyKey {
	var k denyKey
	for i := range k {
		k[i] = s.key[i].Load()
	}
	return k
}

type denyBucket [denyWays]denySlot

// denyTable holds the aggregates (see the file's comment).
type denyTable struct {
	seed    [6]uint64
	mask    uint64 // buckets - 1
	buckets []denyBucket
	dropped atomic.Uint64

	mu     sync.Mutex // creates, folds and removes aggregates
	max    int        // MaxDenies
	held   int        // aggregates in the table
	ports  map[denyKey]int
	totals [len(reasons)]uint64 // packets of the aggregates collect reported
}

func (d *denyTable) init(maxAggs int) {
	per := (2*maxAggs + denyWays - 1) / denyWays
	n := 1
	for n < per {
		n <<= 1
	}
	d.mask = uint64(n - 1)
	for i := range d.seed {
		d.seed[i] = rand.Uint64()
	}
	d.buckets = make([]denyBucket, n)
	d.max = maxAggs
	d.ports = make(map[denyKey]int, maxAggs)
}

// bucketOf returns k's bucket. An IPv4 key's addresses fit one word, so
// its hash is one multiply.
func (d *denyTable) bucketOf(k *denyKey) *denyBucket {
	a := k[1]<<32 ^ k[3]
	if k[4]&metaV6 != 0 {
		a = d.mix6(k)
	}
	return &d.buckets[mum(a^d.seed[0], k[4]^d.seed[1])&d.mask]
}

// mix6 folds an IPv6 key's addresses into one word.
func (d *denyTable) mix6(k *denyKey) uint64 {
	return mum(k[0]^d.seed[2], k[1]^d.seed[3]) ^ mum(k[2]^d.seed[4], k[3]^d.seed[5])
}

// hitResult is what the lock-free lookup found.
type hitResult int

const (
	hitMiss hitResult = iota // no aggregate for the key
	hitDone                  // counted
	hitSlow                  // the aggregate exists; count it under mu
)

// add counts a packet of n bytes denied at now for reasons[reason] and
// reports whether it was recorded (false: the table was full,
// Stats.DeniesDropped).
func (d *denyTable) add(p *packet, n int, reason int, now int64) bool {
	ported := hasPorts(p.proto) && !p.frag
	var dport uint16
	if ported {
		dport = p.dport
	}
	var k denyKey
	k.pack(p, reason, now/int64(time.Minute), dport)
	r := d.hit(&k, n, now)
	if r == hitMiss && ported {
		o := k.other()
		r = d.hit(&o, n, now)
	}
	if r == hitDone {
		return true
	}
	return d.create(k, ported, n, now)
}

// hit counts the packet in k's aggregate without a lock if it can.
func (d *denyTable) hit(k *denyKey, n int, now int64) hitResult {
	b := d.bucketOf(k)
	for i := range b {
		s := &b[i]
		for {
			w := s.word.Load()
			if w&wordValid == 0 || !s.holds(k) {
				break // not this slot (or no longer)
			}
			if s.last.Load() != now || (w>>wordCountShift)&wordMaxCount == wordMaxCount ||
				w&wordMaxBytes+uint64(n) > wordMaxBytes {
				return hitSlow
			}
			if s.word.CompareAndSwap(w, w+1<<wordCountShift+uint64(n)) {
				return hitDone
			}
		}
	}
	return hitMiss
}

// find returns k's slot or nil. mu must be held.
func (d *denyTable) find(k *denyKey) *denySlot {
	b := d.bucketOf(k)
	for i := range b {
		if s := &b[i]; s.word.Load()&wordValid != 0 && s.holds(k) {
			return s
		}
	}
	return nil
}

// countLocked counts a packet in s, folding the word's counts into the
// slot's. mu must be held.
func (s *denySlot) countLocked(n int, now int64) {
	if now > s.last.Load() {
		s.last.Store(now)
	}
	for {
		w := s.word.Load()
		if s.word.CompareAndSwap(w, w&^wordCounts) {
			s.count += (w>>wordCountShift)&wordMaxCount + 1
			s.bytes += w&wordMaxBytes + uint64(n)
			return
		}
	}
}

// create counts, under mu, a packet the lock-free lookup could not: in its
// aggregate (made meanwhile, or due for a fold), in the scan's shared one,
// or in a new one if it fits.
func (d *denyTable) create(k denyKey, ported bool, n int, now int64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s := d.find(&k); s != nil {
		s.countLocked(n, now)
		return true
	}
	var pair denyKey
	if ported {
		pair = k.pair()
		if d.ports[pair] >= maxDenyPorts {
			k = k.other()
			if s := d.find(&k); s != nil {
				s.countLocked(n, now)
				return true
			}
		}
	}
	var s *denySlot
	if d.held < d.max {
		b := d.bucketOf(&k)
		for i := range b {
			if b[i].word.Load()&wordValid == 0 {
				s = &b[i]
				break
			}
		}
	}
	if s == nil {
		d.dropped.Add(1)
		return false
	}
	for i := range k {
		s.key[i].Store(k[i])
	}
	s.first, s.count, s.bytes = now, 0, 0
	s.last.Store(now)
	gen := (s.word.Load()>>wordGenShift + 1) & wordGenMask
	s.word.Store(wordValid | gen<<wordGenShift | 1<<wordCountShift | uint64(n))
	d.held++
	if ported && !k.isOther() {
		d.ports[pair]++
	}
	return true
}

// collect appends and forgets the aggregates of minutes before now's
// (every aggregate when final).
func (d *denyTable) collect(now int64, final bool, out []wire.FlowRecord) []wire.FlowRecord {
	minute := now / int64(time.Minute)
	d.mu.Lock()
	defer d.mu.Unlock()
	for bi := range d.buckets {
		for si := range d.buckets[bi] {
			s := &d.buckets[bi][si]
			w := s.word.Load()
			if w&wordValid == 0 {
				continue
			}
			k := s.loadKey()
			if !final && k.minute() >= minute {
				continue
			}
			w = s.word.Swap(w &^ (wordValid | wordCounts)) // invalid: lock-free lookups miss it
			count, bytes := s.count+(w>>wordCountShift)&wordMaxCount, s.bytes+w&wordMaxBytes
			out = append(out, wire.FlowRecord{
				Start: time.Unix(0, s.first), End: time.Unix(0, s.last.Load()),
				Src:   netip.AddrPortFrom(k.src(), 0),
				Dst:   netip.AddrPortFrom(k.dst(), k.dport()),
				Proto: k.proto(), PacketsIn: count, BytesIn: bytes,
				Verdict: "deny", Reason: string(reasons[k.reason()]), Count: count,
			})
			d.totals[k.reason()] += count
			d.held--
		}
	}
	for pair := range d.ports {
		if final || pair.minute() < minute {
			delete(d.ports, pair)
		}
	}
	return out
}

// count returns the number of aggregates held.
func (d *denyTable) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.held
}

// packets adds to by reason the denied packets the table recorded: those
// of the aggregates held and of those collect reported.
func (d *denyTable) packets(by *[len(reasons)]uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, n := range d.totals {
		by[i] += n
	}
	for bi := range d.buckets {
		for si := range d.buckets[bi] {
			s := &d.buckets[bi][si]
			if w := s.word.Load(); w&wordValid != 0 {
				k := s.loadKey()
				by[k.reason()] += s.count + (w>>wordCountShift)&wordMaxCount
			}
		}
	}
}
