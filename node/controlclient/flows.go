package controlclient

import (
	"context"
	"sync"
	"time"

	"github.com/warrenmesh/warren/internal/noise"
	"github.com/warrenmesh/warren/internal/wire"
)

// FlowSpool is where the node's flow records wait for the coordinator,
// by position (see package flowspool; *flowspool.Spool is one).
type FlowSpool interface {
	// Batch returns records from position from on and the position
	// after the last one returned.
	Batch(from uint64, maxRecords, maxBytes int) ([]wire.FlowRecord, uint64, error)
	// Ack drops every record before pos; Acked returns that position.
	Ack(pos uint64) error
	Acked() uint64
	// Dropped counts records the full spool dropped and not yet
	// reported; Reported subtracts what an acknowledged batch reported.
	Dropped() uint64
	Reported(n uint64)
	// Changed is signalled when records are appended.
	Changed() <-chan struct{}
}

// Flow batch bounds: records and bytes (of the spool's encoding, about the
// wire's) per batch, well under the coordinator's wire.MaxFlowBatch, and
// batches sent and not yet acknowledged.
const (
	flowBatchRecords  = 1000
	flowBatchBytes    = 512 << 10
	flowBatchInFlight = 4
	// flowRetryAfter is how long the sender waits after the spool
	// failed to read.
	flowRetryAfter = 5 * time.Second
)

// sentBatch is a batch waiting for its acknowledgement.
type sentBatch struct {
	seq     uint64
	dropped uint64 // drops it reported
}

// flowSender sends one session's flow batches: from the spool's
// acknowledged position on (so a new session resends what the last one
// sent unacknowledged), with Seq the spool position after the batch's
// last record, which only grows, across restarts.
type flowSender struct {
	spool FlowSpool
	c     *Client
	wake  chan struct{}

	mu       sync.Mutex
	inflight []sentBatch
}

func newFlowSender(c *Client) *flowSender {
	return &flowSender{spool: c.cfg.Flows, c: c, wake: make(chan struct{}, 1)}
}

// acked handles a FlowAck from the session's reader: the spool drops the
// records, and the drops reported by the batches it covers count as
// reported. It never blocks on the network.
func (f *flowSender) acked(seq uint64) {
	f.mu.Lock()
	var reported uint64
	i := 0
	for ; i < len(f.inflight) && f.inflight[i].seq <= seq; i++ {
		reported += f.inflight[i].dropped
	}
	if i == 0 {
		f.mu.Unlock()
		return // not an acknowledgement of this session's batches
	}
	f.inflight = f.inflight[i:]
	f.mu.Unlock()
	if err := f.spool.Ack(seq); err != nil {
		f.c.log.Warn("flow spool: record acknowledgement", "err", err)
	}
	f.spool.Reported(reported)
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// run sends batches until ctx ends or a write fails (which closes conn,
// ending the session).
func (f *flowSender) run(ctx context.Context, conn *noise.Conn) {
	next := f.spool.Acked()
	for {
		f.mu.Lock()
		n := len(f.inflight)
		var inflightDrops uint64
		for _, b := range f.inflight {
			inflightDrops += b.dropped
		}
		f.mu.Unlock()
		var retry <-chan time.Time
		if n < flowBatchInFlight {
			recs, end, err := f.spool.Batch(next, flowBatchRecords, flowBatchBytes)
			if err != nil {
				f.c.log.Warn("flow spool: read", "err", err)
				retry = time.After(flowRetryAfter)
			}
			dropped := f.spool.Dropped()
			dropped -= min(dropped, inflightDrops)
			if err == nil && (len(recs) > 0 || dropped > 0) {
				if len(recs) == 0 {
					end = max(next, f.spool.Acked())
				}
				f.mu.Lock()
				f.inflight = append(f.inflight, sentBatch{seq: end, dropped: dropped})
				f.mu.Unlock()
				if err := wire.WriteMessage(conn, &wire.FlowBatch{Seq: end, Records: recs, Dropped: dropped}); err != nil {
					if ctx.Err() == nil {
						f.c.log.Warn("send flow batch", "err", err)
					}
					_ = conn.Close()
					return
				}
				next = end
				continue
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-f.spool.Changed():
		case <-f.wake:
		case <-retry:
		}
	}
}
