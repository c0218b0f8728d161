package filter

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// This file aggregates denied packets for flow logs: one aggregate per
// source address, destination address, destination port, protocol, reason
// and minute, with a count. A scan is bounded twice over: past
// maxDenyPorts distinct ports from one source to one destination in a
// minute, the further ports share one aggregate whose port is 0; and the
// table holds at most FlowConfig.MaxDenies aggregates (preallocated), past
// which denied packets are only counted (Stats.DeniesDropped).

// denyKey identifies an aggregate. other marks the shared aggregate of a
// scan's further ports (dport is 0 then).
type denyKey struct {
	src, dst  u128
	minute    int64
	dport     uint16
	proto     uint8
	reason    uint8 // index into reasons
	v6, other bool
}

// denyPair counts the distinct ports one source tried on one destination
// in a minute.
type denyPair struct {
	src, dst u128
	minute   int64
	proto    uint8
	v6       bool
}

type denyAgg struct {
	first, last  int64
	count, bytes uint64
}

// denyTable holds the aggregates in a preallocated slab, indexed by a
// map, so counting a packet is one map lookup and no allocation.
type denyTable struct {
	mu      sync.Mutex
	aggs    map[denyKey]int32 // index into slab
	slab    []denyAgg
	free    []int32 // unused slab indexes
	ports   map[denyPair]int
	dropped atomic.Uint64
}

func (d *denyTable) init(maxAggs int) {
	d.aggs = make(map[denyKey]int32, maxAggs)
	d.slab = make([]denyAgg, maxAggs)
	d.free = make([]int32, maxAggs)
	for i := range d.free {
		d.free[i] = int32(maxAggs - 1 - i)
	}
	d.ports = make(map[denyPair]int, maxAggs)
}

// add counts a denied packet of n bytes.
func (d *denyTable) add(p *packet, n int, reason Reason, now int64) {
	k := denyKey{src: p.src, dst: p.dst, minute: now / int64(time.Minute), proto: p.proto, reason: uint8(reasonIndex(reason)), v6: p.v6}
	ported := hasPorts(p.proto) && !p.frag
	if ported {
		k.dport = p.dport
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if i, ok := d.aggs[k]; ok {
		d.slab[i].add(n, now)
		return
	}
	var pair denyPair
	if ported {
		pair = denyPair{src: p.src, dst: p.dst, minute: k.minute, proto: p.proto, v6: p.v6}
		if d.ports[pair] >= maxDenyPorts {
			k.dport, k.other = 0, true
			if i, ok := d.aggs[k]; ok {
				d.slab[i].add(n, now)
				return
			}
		}
	}
	if len(d.free) == 0 {
		d.dropped.Add(1)
		return
	}
	if ported && !k.other {
		d.ports[pair]++
	}
	i := d.free[len(d.free)-1]
	d.free = d.free[:len(d.free)-1]
	d.slab[i] = denyAgg{first: now, last: now, count: 1, bytes: uint64(n)}
	d.aggs[k] = i
}

func (a *denyAgg) add(n int, now int64) {
	a.last = now
	a.count++
	a.bytes += uint64(n)
}

// collect appends and forgets the aggregates of minutes before now's
// (every aggregate when final).
func (d *denyTable) collect(now int64, final bool, out []wire.FlowRecord) []wire.FlowRecord {
	minute := now / int64(time.Minute)
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, i := range d.aggs {
		if !final && k.minute >= minute {
			continue
		}
		a := &d.slab[i]
		out = append(out, wire.FlowRecord{
			Start: time.Unix(0, a.first), End: time.Unix(0, a.last),
			Src:   netip.AddrPortFrom(toAddr(k.src, k.v6), 0),
			Dst:   netip.AddrPortFrom(toAddr(k.dst, k.v6), k.dport),
			Proto: k.proto, PacketsIn: a.count, BytesIn: a.bytes,
			Verdict: "deny", Reason: string(reasons[k.reason]), Count: a.count,
		})
		delete(d.aggs, k)
		d.free = append(d.free, i)
	}
	for pair := range d.ports {
		if final || pair.minute < minute {
			delete(d.ports, pair)
		}
	}
	return out
}

// count returns the number of aggregates held.
func (d *denyTable) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.aggs)
}
