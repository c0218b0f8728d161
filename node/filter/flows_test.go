package filter

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/testclock"
	"github.com/warrenmesh/warren/internal/wire"
)

// flowFilter is a filter with flow accounting on a fake clock, admitting
// peer4 to self4 on TCP 22 (rule "acls[0]") and UDP 53 (rule "grants[1]").
func flowFilter(t *testing.T, fc FlowConfig) (*Filter, *testclock.Clock) {
	t.Helper()
	clk := newFakeClock()
	ssh := rule(t, []string{peer4}, []string{self4 + " 22"}, protoTCP)
	ssh.Rule = "acls[0]"
	dns := rule(t, []string{peer4, peer6}, []string{self4 + " 53", self6 + " 53"}, protoUDP)
	dns.Rule = "grants[1]"
	return newFilter([]wire.FilterRule{ssh, dns}, config{now: clk.Now, flows: &fc}), clk
}

// send feeds n copies of packet p through the filter: Inbound when it
// comes from a peer, Outbound when this node sends it.
func send(t *testing.T, f *Filter, p pk, n int) int {
	t.Helper()
	b := build(t, p)
	for range n {
		if p.src == self4 || p.src == self6 {
			f.Outbound(b)
		} else {
			f.Inbound(b)
		}
	}
	return len(b) * n
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestFlowAccepted(t *testing.T) {
	f, clk := flowFilter(t, FlowConfig{})
	t0 := clk.Now()
	in := send(t, f, tcp(peer4, self4, 40000, 22, tcpSYN), 1)
	out := send(t, f, tcp(self4, peer4, 22, 40000, tcpSYN|tcpACK), 1)
	advance(f, clk, time.Second)
	in += send(t, f, pk{src: peer4, dst: self4, proto: protoTCP, sport: 40000, dport: 22, flags: tcpACK, payload: make([]byte, 1000)}, 10)
	out += send(t, f, pk{src: self4, dst: peer4, proto: protoTCP, sport: 22, dport: 40000, flags: tcpACK, payload: make([]byte, 300)}, 5)
	// Traffic this node started is logged by its destination, not here.
	send(t, f, tcp(self4, peer4, 50000, 443, tcpSYN), 1)
	send(t, f, tcp(peer4, self4, 443, 50000, tcpSYN|tcpACK), 1)
	if got := f.CollectFlows(false); len(got) != 0 {
		t.Fatalf("open flow reported: %+v", got)
	}
	advance(f, clk, time.Second)
	in += send(t, f, tcp(peer4, self4, 40000, 22, tcpFIN|tcpACK), 1)
	out += send(t, f, tcp(self4, peer4, 22, 40000, tcpFIN|tcpACK), 1)
	in += send(t, f, tcp(peer4, self4, 40000, 22, tcpACK), 1) // the last ACK counts in the flow
	end := clk.Now()
	advance(f, clk, defaultCloseWait-time.Millisecond)
	if got := f.CollectFlows(false); len(got) != 0 {
		t.Fatalf("closing flow reported before CloseWait: %+v", got)
	}
	advance(f, clk, time.Millisecond)
	got := f.CollectFlows(false)
	want := wire.FlowRecord{Start: t0, End: end, Src: ap(peer4 + ":40000"), Dst: ap(self4 + ":22"), Proto: protoTCP,
		PacketsIn: 13, BytesIn: uint64(in), PacketsOut: 7, BytesOut: uint64(out), Verdict: "accept", Rule: "acls[0]"}
	if len(got) != 1 || !sameRecord(got[0], want) {
		t.Fatalf("records = %+v, want [%+v]", got, want)
	}
	if s := f.Stats(); s.FlowsRecorded != 0 {
		t.Errorf("FlowsRecorded after the flow ended = %d", s.FlowsRecorded)
	}
}

func sameRecord(a, b wire.FlowRecord) bool {
	return a.Start.Equal(b.Start) && a.End.Equal(b.End) && a.Update == b.Update && a.Src == b.Src && a.Dst == b.Dst &&
		a.Proto == b.Proto && a.PacketsIn == b.PacketsIn && a.BytesIn == b.BytesIn && a.PacketsOut == b.PacketsOut &&
		a.BytesOut == b.BytesOut && a.Verdict == b.Verdict && a.Reason == b.Reason && a.Rule == b.Rule && a.Count == b.Count
}

// TestFlowEnds: when each kind of flow ends, and what a long one reports
// on the way.
func TestFlowEnds(t *testing.T) {
	tests := []struct {
		name    string
		pkt     pk
		reply   pk
		idle    time.Duration // quiet time after which it ends
		rule    string
		src     string
		updates int // periodic updates over 3 minutes of traffic every 10 s
	}{
		{"udp idle", udp(peer4, self4, 5353, 53), udp(self4, peer4, 53, 5353), defaultIdle, "grants[1]", peer4 + ":5353", 3},
		{"udp6 idle", udp(peer6, self6, 5353, 53), udp(self6, peer6, 53, 5353), defaultIdle, "grants[1]", "[" + peer6 + "]:5353", 3},
		{"tcp idle", tcp(peer4, self4, 40000, 22, tcpACK), tcp(self4, peer4, 22, 40000, tcpACK), defaultTCPIdle, "acls[0]", peer4 + ":40000", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, clk := flowFilter(t, FlowConfig{})
			var updates []wire.FlowRecord
			for range 18 {
				send(t, f, tc.pkt, 1)
				send(t, f, tc.reply, 1)
				advance(f, clk, 10*time.Second)
				updates = append(updates, f.CollectFlows(false)...)
			}
			if len(updates) != tc.updates {
				t.Fatalf("%d updates in 3 minutes, want %d: %+v", len(updates), tc.updates, updates)
			}
			for i, u := range updates {
				if !u.Update || u.PacketsIn != uint64(6*(i+1)) || u.Rule != tc.rule || u.Src.String() != tc.src {
					t.Errorf("update %d = %+v, want cumulative counts (%d packets in) of rule %s from %s", i, u, 6*(i+1), tc.rule, tc.src)
				}
			}
			advance(f, clk, tc.idle-10*time.Second-time.Millisecond)
			if got := f.CollectFlows(false); len(got) != 0 {
				t.Fatalf("quiet flow reported before its idle timeout: %+v", got)
			}
			advance(f, clk, time.Millisecond)
			got := f.CollectFlows(false)
			if len(got) != 1 || got[0].Update || got[0].PacketsIn != 18 || got[0].PacketsOut != 18 {
				t.Fatalf("final records = %+v, want one with 18 packets each way", got)
			}
		})
	}
}

func TestFlowDenyAggregates(t *testing.T) {
	f, clk := flowFilter(t, FlowConfig{})
	start := clk.Now().Truncate(time.Minute).Add(time.Minute) // the start of a minute
	advance(f, clk, start.Sub(clk.Now()))
	n := send(t, f, tcp(peer4, self4, 40000, 23, tcpSYN), 10)
	advance(f, clk, 30*time.Second)
	n += send(t, f, tcp(peer4, self4, 40001, 23, tcpSYN), 5)
	send(t, f, pk{src: peer4, dst: self4, proto: protoICMP, icmpType: icmp4EchoRequest, icmpID: 7}, 3)
	if got := f.CollectFlows(false); len(got) != 0 {
		t.Fatalf("this minute's aggregates reported: %+v", got)
	}
	advance(f, clk, 30*time.Second) // the next minute
	send(t, f, tcp(peer4, self4, 40000, 23, tcpSYN), 2)
	got := f.CollectFlows(false)
	want := map[string]wire.FlowRecord{
		"tcp": {Start: start, End: start.Add(30 * time.Second), Src: ap(peer4 + ":0"), Dst: ap(self4 + ":23"), Proto: protoTCP,
			PacketsIn: 15, BytesIn: uint64(n), Verdict: "deny", Reason: "no-rule", Count: 15},
		"icmp": {Start: start.Add(30 * time.Second), End: start.Add(30 * time.Second), Src: ap(peer4 + ":0"), Dst: ap(self4 + ":0"),
			Proto: protoICMP, PacketsIn: 3, BytesIn: 3 * 28, Verdict: "deny", Reason: "no-rule", Count: 3},
	}
	if len(got) != 2 {
		t.Fatalf("records = %+v, want 2", got)
	}
	for _, r := range got {
		w := want["tcp"]
		if r.Proto == protoICMP {
			w = want["icmp"]
		}
		if !sameRecord(r, w) {
			t.Errorf("record = %+v, want %+v", r, w)
		}
	}
	if got := f.CollectFlows(true); len(got) != 1 || got[0].Count != 2 {
		t.Errorf("final collect = %+v, want the next minute's aggregate of 2", got)
	}
}

// TestFlowPortScan: a scan of 1,000 ports, three times over, yields a
// bounded number of aggregates that still count every packet.
func TestFlowPortScan(t *testing.T) {
	f, clk := flowFilter(t, FlowConfig{})
	b := build(t, tcp(peer4, self4, 40000, 0, tcpSYN))
	for range 3 {
		for port := range 1000 {
			b[ipv4HeaderLen+2], b[ipv4HeaderLen+3] = byte((port+1000)>>8), byte(port+1000)
			f.Inbound(b)
		}
	}
	advance(f, clk, time.Minute)
	got := f.CollectFlows(false)
	if len(got) != maxDenyPorts+1 {
		t.Fatalf("%d records for a 1,000-port scan, want %d", len(got), maxDenyPorts+1)
	}
	var total uint64
	others := 0
	for _, r := range got {
		total += r.Count
		if r.Dst.Port() == 0 {
			others++
			if r.Count != 3*(1000-maxDenyPorts) {
				t.Errorf("further ports' aggregate counts %d, want %d", r.Count, 3*(1000-maxDenyPorts))
			}
		} else if r.Count != 3 {
			t.Errorf("port %d counts %d, want 3", r.Dst.Port(), r.Count)
		}
	}
	if total != 3000 || others != 1 {
		t.Errorf("total count %d (want 3000), %d aggregates for the further ports (want 1)", total, others)
	}
}

// TestFlowBounds: full tables count what they cannot record and never
// grow.
func TestFlowBounds(t *testing.T) {
	f, clk := flowFilter(t, FlowConfig{MaxFlows: 1, MaxDenies: 10})
	capacity := numShards * ways // the smallest table
	const flows = 4000
	b := build(t, udp(peer4, self4, 0, 53))
	for i := range flows {
		b[ipv4HeaderLen], b[ipv4HeaderLen+1] = byte(i>>8), byte(i)
		f.Inbound(b)
	}
	for i := range 100 { // 100 sources, each denied
		send(t, f, tcp(fmt.Sprintf("100.64.1.%d", i), self4, 40000, 23, tcpSYN), 1)
	}
	s := f.Stats()
	if s.FlowsRecorded > capacity || s.FlowsRecorded+int(s.FlowsDropped) != flows {
		t.Errorf("FlowsRecorded %d (capacity %d) + FlowsDropped %d != %d", s.FlowsRecorded, capacity, s.FlowsDropped, flows)
	}
	if s.DenyAggregates != 10 || s.DeniesDropped != 90 {
		t.Errorf("DenyAggregates %d, DeniesDropped %d; want 10 and 90", s.DenyAggregates, s.DeniesDropped)
	}
	advance(f, clk, time.Minute)
	if got := f.CollectFlows(true); len(got) != s.FlowsRecorded+10 {
		t.Errorf("final collect has %d records, want %d", len(got), s.FlowsRecorded+10)
	}
	if s := f.Stats(); s.FlowsRecorded != 0 || s.DenyAggregates != 0 {
		t.Errorf("after the final collect: %+v", s)
	}
}

func TestFlowLoggingOff(t *testing.T) {
	f, _ := flowFilter(t, FlowConfig{})
	send(t, f, udp(peer4, self4, 5353, 53), 1)
	f.SetFlowLogging(false)
	if got := f.CollectFlows(false); len(got) != 1 || got[0].Update {
		t.Fatalf("turning flow logs off reports what is held: %+v", got)
	}
	send(t, f, udp(peer4, self4, 5353, 53), 1)
	send(t, f, udp(peer4, self4, 5353, 54), 1)
	if got := f.CollectFlows(true); len(got) != 0 {
		t.Fatalf("recorded while off: %+v", got)
	}
	f.SetFlowLogging(true)
	check(t, f, build(t, udp(peer4, self4, 5353, 53)), Accept, ReasonRule)
	if got := f.CollectFlows(true); len(got) != 1 {
		t.Fatalf("after turning back on: %+v", got)
	}
	if got := New(nil).CollectFlows(true); got != nil {
		t.Errorf("a filter without accounting collected %+v", got)
	}
}

// TestFlowRuleIDs: each flow carries the id of a rule that accepts it,
// also after the rules change.
func TestFlowRuleIDs(t *testing.T) {
	f, _ := flowFilter(t, FlowConfig{})
	send(t, f, tcp(peer4, self4, 40000, 22, tcpSYN), 1)
	send(t, f, udp(peer6, self6, 5353, 53), 1)
	web := rule(t, []string{peer4}, []string{self4 + " 80"}, protoTCP)
	web.Rule = "grants[7]"
	f.SetRules([]wire.FilterRule{web})
	send(t, f, tcp(peer4, self4, 40000, 80, tcpSYN), 1)
	want := map[uint16]string{22: "acls[0]", 53: "grants[1]", 80: "grants[7]"}
	got := f.CollectFlows(true)
	if len(got) != len(want) {
		t.Fatalf("records = %+v", got)
	}
	for _, r := range got {
		if r.Rule != want[r.Dst.Port()] {
			t.Errorf("flow to port %d has rule %q, want %q", r.Dst.Port(), r.Rule, want[r.Dst.Port()])
		}
	}
}

func TestFlowNoAllocs(t *testing.T) {
	f, _ := flowFilter(t, FlowConfig{})
	in := build(t, tcp(peer4, self4, 40000, 22, tcpACK))
	out := build(t, tcp(self4, peer4, 22, 40000, tcpACK))
	deny := build(t, tcp(peer4, self4, 40000, 23, tcpSYN))
	f.Inbound(in)
	f.Inbound(deny)
	if n := testing.AllocsPerRun(100, func() {
		f.Inbound(in)
		f.Outbound(out)
		f.Inbound(deny)
	}); n != 0 {
		t.Errorf("%v allocations per packet of a known flow", n)
	}
}

// advance moves the fake clock and ticks the filter's flow clock, as the
// engine's flow goroutine does every second.
func advance(f *Filter, clk *testclock.Clock, d time.Duration) {
	clk.Advance(d)
	f.TickFlows()
}

// TestFlowRevocation: a known flow skips the rule lookup only under the
// rules that accepted it; revoking them drops its very next packet, both
// ways of recording (the flow's counts stop there).
func TestFlowRevocation(t *testing.T) {
	f, _ := flowFilter(t, FlowConfig{})
	in := build(t, tcp(peer4, self4, 40000, 22, tcpACK))
	check(t, f, in, Accept, ReasonRule)
	check(t, f, in, Accept, ReasonRule)
	f.SetRules(nil)
	check(t, f, in, Drop, ReasonNoRule)
	got := f.CollectFlows(true)
	if len(got) != 2 {
		t.Fatalf("records = %+v, want the accepted flow and the deny aggregate", got)
	}
	for _, r := range got {
		if r.Verdict == "accept" && r.PacketsIn != 2 || r.Verdict == "deny" && r.Count != 1 {
			t.Errorf("record %+v", r)
		}
	}
}
