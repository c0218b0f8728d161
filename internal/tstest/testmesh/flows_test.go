package testmesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/controlclient"
	"github.com/warrenmesh/warren/node/flowspool"
)

// gate is a TCP proxy on loopback in front of the coordinator that a
// test can shut (every connection cut, new ones refused) and open again.
type gate struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	shut   bool
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

func newGate(t *testing.T, target string) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln, target: target, conns: map[net.Conn]bool{}}
	g.wg.Add(1)
	go g.serve()
	t.Cleanup(func() {
		ln.Close()
		g.setShut(true)
		g.wg.Wait()
	})
	return g
}

func (g *gate) URL() string { return "http://" + g.ln.Addr().String() }

func (g *gate) serve() {
	defer g.wg.Done()
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		g.mu.Lock()
		if g.shut {
			g.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", g.target)
		if err != nil {
			g.mu.Unlock()
			c.Close()
			continue
		}
		g.conns[c], g.conns[up] = true, true
		g.wg.Add(2)
		g.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			defer g.wg.Done()
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
			g.mu.Lock()
			delete(g.conns, dst)
			delete(g.conns, src)
			g.mu.Unlock()
		}
		go pipe(c, up)
		go pipe(up, c)
	}
}

// setShut shuts the gate (cutting every connection) or opens it.
func (g *gate) setShut(shut bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.shut = shut
	if shut {
		for c := range g.conns {
			c.Close()
		}
	}
}

// TestFlowsSpooledWhileCut: a node cut from the coordinator keeps the flow
// records its filter produces in its spool and delivers them when it
// reconnects, each stored once (counted by ID); with a spool too small for
// them, the oldest are dropped, and the coordinator is told how many (an
// audit event) while the newest arrive.
func TestFlowsSpooledWhileCut(t *testing.T) {
	for _, tc := range []struct {
		name      string
		spool     int64
		whileCut  int
		wantDrops bool
	}{
		{"spool holds them", 0, 1500, false}, // two batches and a half
		{"spool full", 64 << 10, 2000, true},
	} {
		t.Run(tc.name, func(t *testing.T) { testFlowsSpooledWhileCut(t, tc.spool, tc.whileCut, tc.wantDrops) })
	}
}

// flowsWait bounds the waits for flows to arrive: generous, as the race
// detector slows the JSON of thousands of records tenfold and more.
const flowsWait = 60 * time.Second

func testFlowsSpooledWhileCut(t *testing.T, spoolSize int64, whileCut int, wantDrops bool) {
	m := New(t, Options{})
	ctx := context.Background()
	ann := m.User("ann@example.com")
	g := newGate(t, strings.TrimPrefix(m.URL, "http://"))
	spool, err := flowspool.Open(t.TempDir(), spoolSize, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { spool.Close() })
	n := m.AddNode("db", NodeOptions{AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID}), ControlURL: g.URL(), Flows: spool})
	if err := n.WaitFor(wait, func(nm *controlclient.Netmap) bool { return nm != nil }); err != nil {
		t.Fatal(err)
	}
	self := n.Netmap().Self
	dst := self.Addresses[0].Addr()
	seq := 0
	records := func(count int) []wire.FlowRecord {
		out := make([]wire.FlowRecord, count)
		at := time.Now().Add(-time.Minute).UTC()
		for i := range out {
			out[i] = wire.FlowRecord{ID: fmt.Sprintf("%d-1-%06d", self.ID, seq), Start: at, End: at,
				Src: netip.MustParseAddrPort("100.64.200.1:40000"), Dst: netip.AddrPortFrom(dst, 5432), Proto: 6,
				PacketsIn: 2, BytesIn: 120, Verdict: "accept", Rule: "acls[0]"}
			seq++
		}
		return out
	}
	stored := func() map[string]int {
		flows, err := m.Coord.Store().ListFlows(ctx, store.FlowFilter{Limit: 100000})
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]int{}
		for _, f := range flows {
			ids[f.ID]++
		}
		return ids
	}
	const first = 100 // fits the small spool too
	spool.Append(records(first))
	poll.Until(t, flowsWait, "the first records stored", func() error {
		if got := len(stored()); got != first {
			return fmt.Errorf("%d stored", got)
		}
		if p := spool.Stats().Pending; p != 0 {
			return fmt.Errorf("%d not yet acknowledged", p)
		}
		return nil
	})

	g.setShut(true)
	poll.UntilTrue(t, wait, "the node to see its channel cut", func() bool { return !n.Client.Connected() })
	spool.Append(records(whileCut))
	st := spool.Stats()
	if wantDrops != (st.Dropped > 0) || st.Pending+st.Dropped != uint64(whileCut) {
		t.Fatalf("while cut: spool %+v after %d records", st, whileCut)
	}
	if st.Bytes > st.Max {
		t.Fatalf("spool holds %d bytes, bound %d", st.Bytes, st.Max)
	}
	g.setShut(false)
	total := first + whileCut
	want := total - int(st.Dropped)
	poll.Until(t, flowsWait, "every spooled record stored", func() error {
		if got := len(stored()); got != want {
			return fmt.Errorf("%d stored, want %d", got, want)
		}
		if p := spool.Stats().Pending; p != 0 {
			return fmt.Errorf("%d still pending in the spool", p)
		}
		return nil
	})
	ids := stored()
	for id, c := range ids {
		if c != 1 {
			t.Errorf("%s stored %d times", id, c)
		}
	}
	// What was dropped is the oldest of those spooled while cut.
	for i := range total {
		id := fmt.Sprintf("%d-1-%06d", self.ID, i)
		dropped := i >= first && i < first+int(st.Dropped)
		if _, ok := ids[id]; ok == dropped {
			t.Fatalf("record %s: stored %v, dropped %v", id, ok, dropped)
		}
	}
	var reported uint64
	poll.Until(t, flowsWait, "the drops reported", func() error {
		events, err := m.Coord.Store().ListAudit(ctx, store.AuditFilter{Action: "flows.dropped"})
		if err != nil {
			return err
		}
		reported = 0
		for _, e := range events {
			var n uint64
			if _, err := fmt.Sscanf(e.Detail[strings.Index(e.Detail, `"records":`)+len(`"records":`):], "%d", &n); err != nil {
				return errors.New(e.Detail)
			}
			reported += n
		}
		if reported != st.Dropped {
			return fmt.Errorf("%d reported, %d dropped", reported, st.Dropped)
		}
		return nil
	})
	if spool.Dropped() != 0 {
		t.Errorf("%d drops left unreported in the spool", spool.Dropped())
	}
}
