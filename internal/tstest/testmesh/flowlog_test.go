package testmesh

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/controlclient"
)

// flowPolicy lets group:eng reach tag:db on TCP 5432 (acls[0]) and UDP
// 5353 (acls[1]), and nothing else.
const flowPolicy = `{
	"groups": {"group:eng": ["ann@example.com"]},
	"tagOwners": {"tag:db": ["autogroup:admin"]},
	"acls": [
		{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5432"]},
		{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5353"], "proto": "udp"},
	],
}`

// flowSink collects what an engine hands its FlowSink.
type flowSink struct {
	mu   sync.Mutex
	recs []wire.FlowRecord
}

func (s *flowSink) add(recs []wire.FlowRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, recs...)
}

func (s *flowSink) all() []wire.FlowRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]wire.FlowRecord(nil), s.recs...)
}

// flowMesh starts a tag:db node recording flows into a sink and ann's
// laptop, and waits until they see each other.
func flowMesh(t *testing.T, policy string) (m *Mesh, db, laptop *Node, sink *flowSink) {
	t.Helper()
	m = New(t, Options{Policy: policy})
	ann := m.User("ann@example.com")
	sink = &flowSink{}
	db = m.AddNode("db", NodeOptions{DataPlane: true, FlowSink: sink.add, FlowInterval: 100 * time.Millisecond,
		AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID, Tags: []string{"tag:db"}}), Tags: []string{"tag:db"}})
	laptop = m.AddNode("ann-laptop", NodeOptions{DataPlane: true, AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID})})
	for _, n := range []*Node{db, laptop} {
		must(t, n.WaitFor(wait, func(nm *controlclient.Netmap) bool {
			return len(nm.Peers) == 1 && len(nm.Peers[0].Endpoints) > 0 && n.Engine() != nil
		}))
	}
	return m, db, laptop, sink
}

// udpEcho answers every datagram to port on n with reply bytes.
func udpEcho(t *testing.T, n *Node, port uint16, reply int) {
	t.Helper()
	pc, err := n.Engine().ListenUDP(port)
	must(t, err)
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		out := make([]byte, reply)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(out, from)
		}
	}()
}

// pingPong sends count datagrams of size bytes over c, each after the
// previous one's answer (resent after a second without one), and returns
// how many it sent and how many answers it read.
func pingPong(t *testing.T, c net.Conn, count, size int) (sent, answers int) {
	t.Helper()
	msg, buf := make([]byte, size), make([]byte, 2048)
	deadline := time.Now().Add(wait)
	for answers < count && time.Now().Before(deadline) {
		if _, err := c.Write(msg); err != nil {
			t.Fatalf("send: %v", err)
		}
		sent++
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := c.Read(buf); err == nil {
			answers++
		} else if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read: %v", err)
		}
	}
	if answers < count {
		t.Fatalf("%d of %d answers within %v", answers, count, wait)
	}
	return sent, answers
}

// within1pct reports whether got is within 1% of want.
func within1pct(got, want uint64) bool {
	d := float64(got) - float64(want)
	return d <= 0.01*float64(want) && -d <= 0.01*float64(want)
}

// TestFlowLogsAtDestination: the destination's filter records an allowed
// UDP exchange and TCP connection with their rule ids and byte counts
// (UDP within 1% of what was sent each way), a denied connection as an
// aggregate with its reason, and a 1,000-port scan as a bounded number of
// aggregates. The records arrive through the engine's FlowSink; stopping
// the node delivers what is still open.
func TestFlowLogsAtDestination(t *testing.T) {
	_, db, laptop, sink := flowMesh(t, flowPolicy)
	echoOn(t, db, 5432)
	udpEcho(t, db, 5353, 500)
	dbAddr, laptopAddr := addr4(t, db), addr4(t, laptop)
	laptopID := laptop.Netmap().Self.ID

	// UDP: 200 datagrams of 1,000 bytes, 500 back for each.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	uc, err := laptop.Engine().DialContext(ctx, "udp", netip.AddrPortFrom(dbAddr, 5353))
	must(t, err)
	defer uc.Close()
	const datagrams, reqSize, replySize, ipUDP = 200, 1000, 500, 28
	sent, answers := pingPong(t, uc, datagrams, reqSize)

	// TCP: 256 KiB echoed.
	tc, err := dialWithin(laptop, netip.AddrPortFrom(dbAddr, 5432), wait)
	must(t, err)
	payload := []byte(strings.Repeat("warren flow log ", 16384))
	go func() { _, _ = tc.Write(payload) }()
	_ = tc.SetReadDeadline(time.Now().Add(wait))
	if _, err := io.ReadFull(tc, make([]byte, len(payload))); err != nil {
		t.Fatalf("TCP echo: %v", err)
	}
	tc.Close()

	// Denied: a scan of 1,000 UDP ports, in chunks of 50 so that no
	// socket buffer on the way can overflow on a busy machine, then TCP to
	// port 22 (no rule).
	eng := db.Engine()
	drops := func() uint64 { return eng.FilterStats().Dropped["no-rule"] }
	for first := uint16(10000); first < 11000; first += 50 {
		for port := first; port < first+50; port++ {
			c, err := laptop.Engine().DialContext(ctx, "udp", netip.AddrPortFrom(dbAddr, port))
			must(t, err)
			_, _ = c.Write([]byte("scan"))
			c.Close()
		}
		want := uint64(first + 50 - 10000)
		poll.UntilTrue(t, wait, "the scan to reach db", func() bool { return drops() >= want })
	}
	if c, err := dialWithin(laptop, netip.AddrPortFrom(dbAddr, 22), 300*time.Millisecond); err == nil {
		c.Close()
		t.Fatal("port 22 reached")
	}
	poll.UntilTrue(t, wait, "the SYN to port 22 to reach db", func() bool { return drops() > 1000 })
	db.Stop() // delivers every open flow and aggregate

	var udpRec, tcpRec, sshRec *wire.FlowRecord
	var scanRecs int
	var scanCount uint64
	for _, r := range sink.all() {
		if r.ID == "" || r.Src.Addr() != laptopAddr || r.SrcNode != laptopID || r.Dst.Addr() != dbAddr {
			t.Errorf("record not from ann-laptop (%s, node %d) to db (%s), or without ID: %+v", laptopAddr, laptopID, dbAddr, r)
			continue
		}
		switch {
		case r.Verdict == "accept" && r.Dst.Port() == 5353 && !r.Update:
			udpRec = &r
		case r.Verdict == "accept" && r.Dst.Port() == 5432 && !r.Update:
			tcpRec = &r
		case r.Verdict == "deny" && r.Dst.Port() == 22:
			sshRec = &r
		case r.Verdict == "deny" && r.Proto == 17:
			scanRecs++
			scanCount += r.Count
		}
	}
	if udpRec == nil || tcpRec == nil || sshRec == nil {
		t.Fatalf("missing records (udp %v, tcp %v, denied ssh %v) in %+v", udpRec, tcpRec, sshRec, sink.all())
	}
	if udpRec.Rule != "acls[1]" || udpRec.Proto != 17 ||
		!within1pct(udpRec.BytesIn, uint64(sent*(reqSize+ipUDP))) || !within1pct(udpRec.BytesOut, uint64(answers*(replySize+ipUDP))) {
		t.Errorf("UDP record %+v: want rule acls[1], ~%d bytes in (%d sent), ~%d out (%d answers read)",
			*udpRec, sent*(reqSize+ipUDP), sent, answers*(replySize+ipUDP), answers)
	}
	if tcpRec.Rule != "acls[0]" || tcpRec.Proto != 6 || tcpRec.BytesIn < uint64(len(payload)) || tcpRec.BytesOut < uint64(len(payload)) ||
		tcpRec.BytesIn > uint64(len(payload))*11/10 || tcpRec.BytesOut > uint64(len(payload))*11/10 {
		t.Errorf("TCP record %+v: want rule acls[0] and %d bytes each way plus headers", *tcpRec, len(payload))
	}
	if sshRec.Reason != "no-rule" || sshRec.Count == 0 || sshRec.Rule != "" {
		t.Errorf("denied record %+v: want reason no-rule and a count", *sshRec)
	}
	// One minute's aggregates: 16 ports and the rest; a scan that spans a
	// minute's end makes two sets.
	if scanRecs == 0 || scanRecs > 2*17 || scanCount != 1000 {
		t.Errorf("the 1,000-port scan made %d records counting %d packets; want at most 34 counting 1000", scanRecs, scanCount)
	}
	t.Logf("UDP: %d bytes in for %d sent; TCP: %d/%d bytes for %d; scan: %d records", udpRec.BytesIn, sent*(reqSize+ipUDP),
		tcpRec.BytesIn, tcpRec.BytesOut, len(payload), scanRecs)
}

// TestFlowLogsOffByPolicy: "flowLogs": false reaches the node, which then
// records nothing.
func TestFlowLogsOffByPolicy(t *testing.T) {
	m, db, laptop, sink := flowMesh(t, strings.Replace(flowPolicy, `"acls"`, `"flowLogs": false, "acls"`, 1))
	_ = m
	must(t, db.WaitFor(wait, func(nm *controlclient.Netmap) bool {
		_, off := nm.Self.CapMap[wire.AttrFlowLogsOff]
		return off
	}))
	udpEcho(t, db, 5353, 10)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	uc, err := laptop.Engine().DialContext(ctx, "udp", netip.AddrPortFrom(addr4(t, db), 5353))
	must(t, err)
	defer uc.Close()
	pingPong(t, uc, 5, 100)
	db.Stop()
	if recs := sink.all(); len(recs) != 0 {
		t.Errorf("records with flow logs off: %+v", recs)
	}
}
