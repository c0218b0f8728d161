package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/filter"
)

// Flow logs: with Config.FlowSink the engine's filter counts every flow a
// rule accepts and aggregates what it denies (node/filter's flow
// accounting), including traffic this node routes (the record's Dst is
// then the routed address). One goroutine, started by New and ended by
// Close, ticks the filter's flow clock every second, collects the records
// due every FlowInterval, names them (ID, SrcNode) and hands them to the
// sink in batches of at most maxFlowBatch; at Close it delivers every flow
// still open.

// Flow delivery defaults.
const (
	defaultFlowInterval = 5 * time.Second
	maxFlowBatch        = 1000
	flowTick            = time.Second
)

// flowLog is the engine's flow delivery state.
type flowLog struct {
	sink     func([]wire.FlowRecord)
	interval time.Duration
	epoch    uint32        // random per engine start: IDs never repeat across restarts
	seq      uint64        // records named so far; only the flow goroutine touches it
	self     atomic.Uint64 // this node's ID (SetSelf); 0 until known
}

// newFlowFilter returns the engine's filter: with flow accounting when
// cfg has a sink.
func newFlowFilter(cfg Config) (*filter.Filter, *flowLog) {
	if cfg.FlowSink == nil {
		return filter.New(nil), nil
	}
	fl := &flowLog{sink: cfg.FlowSink, interval: cfg.FlowInterval, epoch: rand.Uint32()}
	if fl.interval <= 0 {
		fl.interval = defaultFlowInterval
	}
	return filter.NewWithFlows(nil, filter.FlowConfig{Update: cfg.FlowUpdate}), fl
}

// SetSelf tells the engine about its own node (the netmap's Self): its ID
// names flow records, and the policy's warren:flow-logs-off attribute
// (wire.AttrFlowLogsOff) in its CapMap stops flow recording until a later
// Self no longer carries it.
func (e *Engine) SetSelf(self wire.Node) {
	if e.flows == nil {
		return
	}
	e.flows.self.Store(uint64(self.ID))
	_, off := self.CapMap[wire.AttrFlowLogsOff]
	e.filter.SetFlowLogging(!off)
}

// runFlows is the flow goroutine: it owns fl.seq and every call of the sink.
func (e *Engine) runFlows(ctx context.Context, fl *flowLog) {
	defer e.wg.Done()
	tick := min(flowTick, fl.interval)
	t := time.NewTicker(tick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			e.deliverFlows(fl, e.filter.CollectFlows(true))
			return
		case now := <-t.C:
			if now.Sub(last) < fl.interval-tick/2 {
				e.filter.TickFlows()
				continue
			}
			last = now
			e.deliverFlows(fl, e.filter.CollectFlows(false))
		}
	}
}

// deliverFlows names recs and hands them to the sink in batches.
func (e *Engine) deliverFlows(fl *flowLog, recs []wire.FlowRecord) {
	if len(recs) == 0 {
		return
	}
	peerOf := e.peerIndex()
	self := fl.self.Load()
	for i := range recs {
		fl.seq++
		recs[i].ID = fmt.Sprintf("%d-%08x-%d", self, fl.epoch, fl.seq)
		recs[i].SrcNode = peerOf(recs[i].Src.Addr())
	}
	for len(recs) > 0 {
		n := min(len(recs), maxFlowBatch)
		fl.sink(recs[:n:n])
		recs = recs[n:]
	}
}

// peerIndex returns a lookup of the peer an address belongs to: one of
// its mesh addresses, else a route it carries (a source behind a subnet
// router); 0 when none.
func (e *Engine) peerIndex() func(netip.Addr) wire.NodeID {
	e.mu.Lock()
	defer e.mu.Unlock()
	byAddr := make(map[netip.Addr]wire.NodeID, len(e.peers))
	for _, p := range e.peers {
		for _, a := range p.Addresses {
			byAddr[a.Addr()] = p.ID
		}
	}
	type route struct {
		p  netip.Prefix
		id wire.NodeID
	}
	var routes []route
	for p, k := range e.routes {
		if peer, ok := e.peers[k]; ok {
			routes = append(routes, route{p, peer.ID})
		}
	}
	return func(a netip.Addr) wire.NodeID {
		if id, ok := byAddr[a]; ok {
			return id
		}
		best, bits := wire.NodeID(0), -1
		for _, r := range routes {
			if r.p.Contains(a) && r.p.Bits() > bits {
				best, bits = r.id, r.p.Bits()
			}
		}
		return best
	}
}

// ListenUDP listens on UDP port on the node's mesh addresses in the
// userspace stack; a kernel TUN data plane uses the host's sockets
// instead.
func (e *Engine) ListenUDP(port uint16) (net.PacketConn, error) {
	l, ok := e.net.(interface {
		ListenUDP(port uint16) (net.PacketConn, error)
	})
	if !ok {
		return nil, fmt.Errorf("engine: ListenUDP needs the userspace data plane")
	}
	return l.ListenUDP(port)
}
