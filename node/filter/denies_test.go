package filter

import (
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// TestDenyKeys: each kind of denied packet comes back out of its packed
// aggregate key as the record it should be.
func TestDenyKeys(t *testing.T) {
	other6 := "fd7a:115c:a1e0:ffff:1234:5678:9abc:def0"
	tests := []struct {
		name string
		pkt  pk
		want wire.FlowRecord
	}{
		{"tcp4", tcp("100.127.1.2", self4, 40000, 65535, tcpSYN),
			wire.FlowRecord{Src: ap("100.127.1.2:0"), Dst: ap(self4 + ":65535"), Proto: protoTCP, Reason: "no-rule"}},
		{"udp6", udp(other6, self6, 5353, 1234),
			wire.FlowRecord{Src: ap("[" + other6 + "]:0"), Dst: ap("[" + self6 + "]:1234"), Proto: protoUDP, Reason: "no-rule"}},
		{"icmp4", echo(peer4, self4, icmp4EchoRequest, 9),
			wire.FlowRecord{Src: ap(peer4 + ":0"), Dst: ap(self4 + ":0"), Proto: protoICMP, Reason: "no-rule"}},
		{"fragment6", pk{src: other6, dst: self6, proto: protoTCP, fragOff: 5, l4: make([]byte, 8)},
			wire.FlowRecord{Src: ap("[" + other6 + "]:0"), Dst: ap("[" + self6 + "]:0"), Proto: protoTCP, Reason: "fragment"}},
		{"fragment4", pk{src: peer4, dst: self4, proto: protoUDP, fragOff: 5, l4: make([]byte, 8)},
			wire.FlowRecord{Src: ap(peer4 + ":0"), Dst: ap(self4 + ":0"), Proto: protoUDP, Reason: "fragment"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, clk := flowFilter(t, FlowConfig{})
			n := send(t, f, tc.pkt, 3)
			want := tc.want
			want.Start, want.End = clk.Now(), clk.Now()
			want.PacketsIn, want.BytesIn, want.Count, want.Verdict = 3, uint64(n), 3, "deny"
			got := f.CollectFlows(true)
			if len(got) != 1 || !sameRecord(got[0], want) {
				t.Errorf("records = %+v, want [%+v]", got, want)
			}
		})
	}
}

// TestDenyFold: an aggregate whose packets or bytes outgrow its slot's
// word still counts exactly.
func TestDenyFold(t *testing.T) {
	tests := []struct {
		name    string
		packets int
		size    int
	}{
		{"packets", int(wordMaxCount) + 3, 40},
		{"bytes", int(wordMaxBytes/65535) + 3, 65535},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var d denyTable
			d.init(16)
			var p packet
			if !p.parse(build(t, tcp(peer4, self4, 1, 23, tcpACK)), false) {
				t.Fatal("packet does not parse")
			}
			for range tc.packets {
				if !d.add(&p, tc.size, reasonIndexNoRule, 1) {
					t.Fatal("not recorded")
				}
			}
			got := d.collect(1, true, nil)
			if len(got) != 1 || got[0].Count != uint64(tc.packets) || got[0].BytesIn != uint64(tc.packets*tc.size) {
				t.Fatalf("records = %+v, want one of %d packets, %d bytes", got, tc.packets, tc.packets*tc.size)
			}
		})
	}
}

// TestDenyDropCounters: with accounting on, Stats.Dropped counts every
// denied packet once, whether its aggregate is held, reported, or did not
// fit, and while flow logging is off.
func TestDenyDropCounters(t *testing.T) {
	f, clk := flowFilter(t, FlowConfig{MaxDenies: 2})
	want := uint64(0)
	expect := func(step string) {
		t.Helper()
		if got := f.Stats().Dropped[ReasonNoRule]; got != want {
			t.Errorf("%s: Dropped[no-rule] = %d, want %d", step, got, want)
		}
	}
	send(t, f, tcp(peer4, self4, 1, 23, tcpSYN), 5)
	want += 5
	expect("held")
	send(t, f, tcp(peer4, self4, 1, 24, tcpSYN), 2)
	send(t, f, tcp(peer4, self4, 1, 25, tcpSYN), 4) // the table is full
	want += 6
	expect("full")
	if s := f.Stats(); s.DeniesDropped != 4 {
		t.Errorf("DeniesDropped = %d, want 4", s.DeniesDropped)
	}
	advance(f, clk, time.Minute)
	if got := f.CollectFlows(false); len(got) != 2 {
		t.Fatalf("records = %+v, want 2", got)
	}
	expect("reported")
	f.SetFlowLogging(false)
	send(t, f, tcp(peer4, self4, 1, 23, tcpSYN), 3)
	want += 3
	expect("logging off")
	f.SetFlowLogging(true)
	send(t, f, tcp(peer4, self4, 1, 23, tcpSYN), 1)
	want++
	expect("logging on again")
}
