package filter

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// TestFlowConcurrentExact: several goroutines feed accepted and denied
// packets at once (as wireguard-go's receive goroutines do) while another
// collects and moves the clock across minutes; every packet is counted
// exactly once, in the right flow or aggregate, and the scan rule holds in
// every minute.
func TestFlowConcurrentExact(t *testing.T) {
	const (
		workers   = 4
		perWorker = 1500
		scanPorts = 40
		scanner   = "100.64.9.9"
	)
	f, clk := flowFilter(t, FlowConfig{})
	accepted := build(t, tcp(peer4, self4, 40000, 22, tcpACK))
	reply := build(t, tcp(self4, peer4, 22, 40000, tcpACK))
	deniedSeg := build(t, tcp(peer4, self4, 40000, 23, tcpACK)) // one aggregate with the SYN
	deniedSYN := build(t, tcp(peer4, self4, 40001, 23, tcpSYN))
	scan := make([][]byte, scanPorts)
	for i := range scan {
		scan[i] = build(t, tcp(scanner, self4, 40000, uint16(1000+i), tcpSYN))
	}

	own := make([][]byte, workers) // each worker's own accepted flow
	for w := range own {
		own[w] = build(t, tcp(peer4, self4, uint16(50000+w), 22, tcpACK))
	}

	var (
		mu      sync.Mutex
		records []wire.FlowRecord
		senders sync.WaitGroup
	)
	done := make(chan struct{})
	collected := make(chan struct{})
	go func() { // the one collector, as the engine's flow goroutine
		defer close(collected)
		for range 100_000 { // bounded; ends when the senders are done
			select {
			case <-done:
				return
			default:
			}
			advance(f, clk, 7*time.Second)
			got := f.CollectFlows(false)
			mu.Lock()
			records = append(records, got...)
			mu.Unlock()
		}
	}()
	for w := range workers {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for i := range perWorker {
				f.Inbound(accepted)
				f.Outbound(reply)
				f.Inbound(own[w])
				f.Inbound(deniedSeg)
				f.Inbound(deniedSYN)
				f.Inbound(scan[(i+w*7)%scanPorts])
			}
		}()
	}
	senders.Wait()
	close(done)
	<-collected
	records = append(records, f.CollectFlows(true)...)

	s := f.Stats()
	if s.FlowsDropped != 0 || s.DeniesDropped != 0 {
		t.Fatalf("dropped %d flows and %d denies; the tables are large enough for none", s.FlowsDropped, s.DeniesDropped)
	}
	acceptedBy := map[uint16]uint64{} // source port -> packets, over the flow's final records
	var replies uint64
	deniedBy := map[string]uint64{} // source:dport -> packets
	type minuteOf struct {
		src    string
		minute int64
	}
	ownPorts := map[minuteOf]int{}
	shared := map[minuteOf]int{}
	for _, r := range records {
		switch {
		case r.Verdict == "accept" && !r.Update:
			acceptedBy[r.Src.Port()] += r.PacketsIn
			replies += r.PacketsOut
		case r.Verdict == "deny":
			if r.Count != r.PacketsIn || r.Reason != string(ReasonNoRule) {
				t.Errorf("deny record %+v", r)
			}
			deniedBy[fmt.Sprintf("%s:%d", r.Src.Addr(), r.Dst.Port())] += r.Count
			m := minuteOf{r.Src.Addr().String(), r.Start.Unix() / 60}
			if r.End.Unix()/60 != m.minute {
				t.Errorf("deny record spans minutes: %+v", r)
			}
			if r.Dst.Port() == 0 {
				shared[m]++
			} else {
				ownPorts[m]++
			}
		}
	}
	if got := acceptedBy[40000]; got != workers*perWorker {
		t.Errorf("shared accepted flow counted %d packets, want %d", got, workers*perWorker)
	}
	if replies != workers*perWorker {
		t.Errorf("replies counted %d packets, want %d", replies, workers*perWorker)
	}
	for w := range workers {
		if got := acceptedBy[uint16(50000+w)]; got != perWorker {
			t.Errorf("worker %d's flow counted %d packets, want %d", w, got, perWorker)
		}
	}
	if got := deniedBy[peer4+":23"]; got != 2*workers*perWorker {
		t.Errorf("denied to port 23: %d, want %d", got, 2*workers*perWorker)
	}
	var scanned uint64
	for k, n := range deniedBy {
		if k != peer4+":23" {
			scanned += n
		}
	}
	if scanned != workers*perWorker {
		t.Errorf("scan packets counted %d, want %d", scanned, workers*perWorker)
	}
	// A packet that read the flow clock just before a tick can land in its
	// minute's aggregates after they were collected, making a second
	// aggregate of that minute: at most one such packet per worker.
	for m, n := range ownPorts {
		if n > maxDenyPorts+workers || shared[m] > 1+workers || m.src == peer4 && n > 1+workers {
			t.Errorf("%s in minute %d: %d aggregates of their own port, %d shared; want at most %d and 1 (+%d late)",
				m.src, m.minute, n, shared[m], maxDenyPorts, workers)
		}
	}
}
