package control

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/flowlog"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/wire"
)

// TestFlowBatchStoredThenAcked sends flow batches larger than a set-up
// message over a streaming channel: each is acknowledged, by its Seq,
// only once stored, and a resend stores nothing twice.
func TestFlowBatchStoredThenAcked(t *testing.T) {
	h := newHarness(t, Config{})
	// The harness builds its Server from cfg; give this one a flow log.
	h.srv.cfg.Flows = flowlog.New(h.engine, audit.New(h.st, nil), nil)
	n := h.join("192.0.2.1:41641")
	self, _ := h.engine.Node(n.id)
	dst := self.Wire.Addresses[0].Addr()
	at := time.Now().Add(-time.Minute).UTC()
	batch := func(seq uint64, from, count int) *wire.FlowBatch {
		b := &wire.FlowBatch{Seq: seq}
		for i := from; i < from+count; i++ {
			b.Records = append(b.Records, wire.FlowRecord{ID: fmt.Sprintf("%d-1-%d", n.id, i), Start: at, End: at,
				Src: netip.MustParseAddrPort("100.64.9.9:1000"), Dst: netip.AddrPortFrom(dst, 5432), Proto: 6,
				BytesIn: 100, Verdict: "accept", Rule: "acls[0]"})
		}
		return b
	}
	awaitAck := func(seq uint64) {
		t.Helper()
		for {
			switch m := n.recv().(type) {
			case *wire.FlowAck:
				if m.Seq != seq {
					t.Fatalf("ack %d, want %d", m.Seq, seq)
				}
				return
			case *wire.KeepAlive, *wire.MapResponse:
			default:
				t.Fatalf("want a flow ack, got %T", m)
			}
		}
	}
	big := batch(1, 0, 1000)
	if b, _ := wire.Encode(big); len(b) <= wire.MaxNodeMessage {
		t.Fatalf("batch of %d bytes is no larger than a set-up message", len(b))
	}
	n.send(big)
	awaitAck(1)
	n.send(batch(2, 900, 200)) // 100 of them again
	awaitAck(2)
	flows, err := h.st.ListFlows(context.Background(), store.FlowFilter{Limit: 5000})
	if err != nil {
		t.Fatal(err)
	}
	if len(flows) != 1100 {
		t.Fatalf("%d flows stored, want 1100", len(flows))
	}
}
