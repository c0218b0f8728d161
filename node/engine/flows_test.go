package engine

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/wire"
)

// TestFlowDelivery: records leave through the sink in batches of at most
// maxFlowBatch, each with a unique "<node>-<epoch>-<seq>" ID and the peer
// its source belongs to (by mesh address, else by a route it carries);
// Close delivers nothing twice and ends the flow goroutine.
func TestFlowDelivery(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var batches [][]wire.FlowRecord
	e, err := New(Config{NodeKey: key.NewNode(), Addresses: []netip.Prefix{netip.MustParsePrefix("100.64.0.1/32")},
		FlowSink: func(recs []wire.FlowRecord) {
			mu.Lock()
			defer mu.Unlock()
			batches = append(batches, recs)
		}})
	if err != nil {
		t.Fatal(err)
	}
	a, b := twoRouters()
	b.Routes = []netip.Prefix{netip.MustParsePrefix("10.30.0.0/24")}
	if err := e.SetNetmap([]wire.Node{a, b}, nil); err != nil {
		t.Fatal(err)
	}
	e.SetSelf(wire.Node{ID: 42})
	srcs := []struct {
		addr string
		want wire.NodeID
	}{{"100.64.0.3", 3}, {"100.64.0.5", 5}, {"10.20.0.7", 3}, {"10.30.0.7", 5}, {"100.64.0.9", 0}}
	recs := make([]wire.FlowRecord, 2*maxFlowBatch+1)
	for i := range recs {
		recs[i].Src = netip.AddrPortFrom(netip.MustParseAddr(srcs[i%len(srcs)].addr), 1)
	}
	// The filter has seen no packet, so the flow goroutine never delivers
	// (nor touches the sequence) while the test calls deliverFlows.
	e.deliverFlows(e.flows, recs)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	ids := map[string]bool{}
	n := 0
	for _, batch := range batches {
		if len(batch) > maxFlowBatch {
			t.Errorf("batch of %d records", len(batch))
		}
		for _, r := range batch {
			if want := srcs[n%len(srcs)].want; r.SrcNode != want {
				t.Errorf("record from %s: SrcNode %d, want %d", r.Src, r.SrcNode, want)
			}
			n++
			if ids[r.ID] || !strings.HasPrefix(r.ID, "42-") || !strings.HasSuffix(r.ID, fmt.Sprintf("-%d", n)) {
				t.Errorf("record %d has ID %q", n, r.ID)
			}
			ids[r.ID] = true
		}
	}
	if n != len(recs) {
		t.Errorf("%d records delivered, want %d", n, len(recs))
	}
}
