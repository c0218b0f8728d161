package filter

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

func TestReplies(t *testing.T) {
	tests := []struct {
		name   string
		out    []pk // what this node sends first
		in     pk
		want   Verdict
		reason Reason
	}{
		{"TCP SYN-ACK to our SYN", []pk{tcp(self4, peer4, 40000, 22, tcpSYN)},
			tcp(peer4, self4, 22, 40000, tcpSYN|tcpACK), Accept, ReasonReply},
		{"TCP data on our connection", []pk{tcp(self4, peer4, 40000, 22, tcpSYN), tcp(self4, peer4, 40000, 22, tcpACK)},
			tcp(peer4, self4, 22, 40000, tcpACK), Accept, ReasonReply},
		{"TCP other local port", []pk{tcp(self4, peer4, 40000, 22, tcpSYN)},
			tcp(peer4, self4, 22, 40001, tcpACK), Drop, ReasonNoRule},
		{"TCP other remote port", []pk{tcp(self4, peer4, 40000, 22, tcpSYN)},
			tcp(peer4, self4, 23, 40000, tcpACK), Drop, ReasonNoRule},
		{"TCP other peer", []pk{tcp(self4, peer4, 40000, 22, tcpSYN)},
			tcp("100.64.0.3", self4, 22, 40000, tcpACK), Drop, ReasonNoRule},
		{"TCP same tuple as ours, not reversed", []pk{tcp(self4, peer4, 40000, 22, tcpSYN)},
			tcp(peer4, self4, 40000, 22, tcpSYN), Drop, ReasonNoRule},
		{"TCP without our SYN is not tracked", []pk{tcp(self4, peer4, 40000, 22, tcpACK)},
			tcp(peer4, self4, 22, 40000, tcpACK), Drop, ReasonNoRule},
		{"TCP SYN-ACK we send is not tracked", []pk{tcp(self4, peer4, 22, 40000, tcpSYN|tcpACK)},
			tcp(peer4, self4, 40000, 22, tcpACK), Drop, ReasonNoRule},
		{"UDP reply", []pk{udp(self4, peer4, 5353, 53)}, udp(peer4, self4, 53, 5353), Accept, ReasonReply},
		{"UDP reply to other port", []pk{udp(self4, peer4, 5353, 53)}, udp(peer4, self4, 53, 5354), Drop, ReasonNoRule},
		{"TCP does not answer UDP", []pk{udp(self4, peer4, 5353, 53)}, tcp(peer4, self4, 53, 5353, tcpACK), Drop, ReasonNoRule},
		{"UDP IPv6 reply", []pk{udp(self6, peer6, 5353, 53)}, udp(peer6, self6, 53, 5353), Accept, ReasonReply},
		{"TCP IPv6 reply", []pk{tcp(self6, peer6, 40000, 443, tcpSYN)}, tcp(peer6, self6, 443, 40000, tcpSYN|tcpACK), Accept, ReasonReply},
		{"echo reply", []pk{echo(self4, peer4, icmp4EchoRequest, 77)}, echo(peer4, self4, icmp4EchoReply, 77), Accept, ReasonReply},
		{"echo reply other id", []pk{echo(self4, peer4, icmp4EchoRequest, 77)}, echo(peer4, self4, icmp4EchoReply, 78), Drop, ReasonNoRule},
		{"echo request is no reply", []pk{echo(self4, peer4, icmp4EchoRequest, 77)}, echo(peer4, self4, icmp4EchoRequest, 77), Drop, ReasonNoRule},
		{"echo reply we send is not tracked", []pk{echo(self4, peer4, icmp4EchoReply, 77)}, echo(peer4, self4, icmp4EchoRequest, 77), Drop, ReasonNoRule},
		{"ICMPv6 echo reply", []pk{echo(self6, peer6, icmp6EchoRequest, 5)}, echo(peer6, self6, icmp6EchoReply, 5), Accept, ReasonReply},
		{"nothing sent", nil, udp(peer4, self4, 53, 5353), Drop, ReasonNoRule},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New(nil)
			for _, p := range tt.out {
				f.Outbound(build(t, p))
			}
			check(t, f, build(t, tt.in), tt.want, tt.reason)
		})
	}
}

func TestRelatedICMPErrors(t *testing.T) {
	ourUDP := build(t, udp(self4, peer4, 5353, 53))
	ourTCP6 := build(t, tcp(self6, peer6, 40000, 443, tcpSYN))
	ourPing := build(t, echo(self4, peer4, icmp4EchoRequest, 9))
	tests := []struct {
		name   string
		in     []byte
		want   Verdict
		reason Reason
	}{
		{"port unreachable for our UDP", icmpErrorTB(t, peer4, self4, icmp4Unreachable, ourUDP), Accept, ReasonRelated},
		{"quote truncated to 8 transport bytes", icmpErrorTB(t, peer4, self4, icmp4Unreachable, ourUDP[:28]), Accept, ReasonRelated},
		{"time exceeded from a router", icmpErrorTB(t, "100.64.0.3", self4, icmp4TimeExceeded, ourUDP), Accept, ReasonRelated},
		{"about our ping", icmpErrorTB(t, peer4, self4, icmp4Unreachable, ourPing), Accept, ReasonRelated},
		{"packet too big for our TCP", icmpErrorTB(t, peer6, self6, icmp6PacketTooBig, ourTCP6), Accept, ReasonRelated},
		{"quote of untracked flow", icmpErrorTB(t, peer4, self4, icmp4Unreachable, build(t, udp(self4, peer4, 5354, 53))), Drop, ReasonNoRule},
		{"quote not from us", icmpErrorTB(t, peer4, self4, icmp4Unreachable, build(t, udp(peer4, self4, 53, 5353))), Drop, ReasonNoRule},
		{"quote truncated below ports", icmpErrorTB(t, peer4, self4, icmp4Unreachable, ourUDP[:24]), Drop, ReasonNoRule},
		{"quote of other family", icmpErrorTB(t, peer6, self6, icmp6Unreachable, ourUDP), Drop, ReasonNoRule},
		{"not an error type", icmpErrorTB(t, peer4, self4, icmp4EchoRequest, ourUDP), Drop, ReasonNoRule},
		{"garbage quote", icmpErrorTB(t, peer4, self4, icmp4Unreachable, []byte{0x4f, 1, 2}), Drop, ReasonNoRule},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New(nil)
			f.Outbound(ourUDP)
			f.Outbound(ourTCP6)
			f.Outbound(ourPing)
			check(t, f, tt.in, tt.want, tt.reason)
		})
	}
}

func TestConntrackExpiry(t *testing.T) {
	tests := []struct {
		name   string
		out    []pk
		in     pk
		alive  time.Duration // the reply still passes this long after the last packet
		expire time.Duration // and is dropped this long after it
	}{
		{"UDP", []pk{udp(self4, peer4, 1, 53)}, udp(peer4, self4, 53, 1), 2 * time.Minute, 2*time.Minute + time.Second},
		{"ICMP echo", []pk{echo(self4, peer4, icmp4EchoRequest, 1)}, echo(peer4, self4, icmp4EchoReply, 1), 30 * time.Second, 31 * time.Second},
		{"TCP unanswered SYN", []pk{tcp(self4, peer4, 1, 22, tcpSYN)}, tcp(peer4, self4, 22, 1, tcpSYN|tcpACK), 2 * time.Minute, 2*time.Minute + time.Second},
		{"TCP closing", []pk{tcp(self4, peer4, 1, 22, tcpSYN), tcp(self4, peer4, 1, 22, tcpFIN|tcpACK)},
			tcp(peer4, self4, 22, 1, tcpACK), 30 * time.Second, 31 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, d := range []time.Duration{tt.alive, tt.expire} {
				clk := newFakeClock()
				f := newFilter(nil, config{now: clk.Now})
				for _, p := range tt.out {
					f.Outbound(build(t, p))
				}
				clk.Advance(d)
				want, reason := Accept, ReasonReply
				if d == tt.expire {
					want, reason = Drop, ReasonNoRule
				}
				check(t, f, build(t, tt.in), want, reason)
			}
		})
	}
}

func TestConntrackTCPEstablishedLivesLong(t *testing.T) {
	clk := newFakeClock()
	f := newFilter(nil, config{now: clk.Now})
	f.Outbound(build(t, tcp(self4, peer4, 1, 22, tcpSYN)))
	check(t, f, build(t, tcp(peer4, self4, 22, 1, tcpSYN|tcpACK)), Accept, ReasonReply)
	f.Outbound(build(t, tcp(self4, peer4, 1, 22, tcpACK)))
	clk.Advance(time.Hour) // an idle SSH session
	data := build(t, tcp(peer4, self4, 22, 1, tcpACK))
	check(t, f, data, Accept, ReasonReply)
	clk.Advance(defaultTimeouts.tcpEstablished + time.Second)
	check(t, f, data, Drop, ReasonNoRule)
}

func TestConntrackRefreshKeepsAlive(t *testing.T) {
	clk := newFakeClock()
	f := newFilter(nil, config{now: clk.Now})
	out := build(t, udp(self4, peer4, 1, 53))
	in := build(t, udp(peer4, self4, 53, 1))
	f.Outbound(out)
	for range 10 {
		clk.Advance(90 * time.Second)
		check(t, f, in, Accept, ReasonReply) // each reply refreshes the flow
	}
	clk.Advance(3 * time.Minute)
	check(t, f, in, Drop, ReasonNoRule)
	f.Outbound(out) // a new packet starts tracking again
	check(t, f, in, Accept, ReasonReply)
}

func TestConntrackBoundedUnderFlood(t *testing.T) {
	const maxFlows = 1024
	clk := newFakeClock()
	f := newFilter(nil, config{now: clk.Now, maxFlows: maxFlows})
	if got := f.ct.capacity(); got != maxFlows {
		t.Fatalf("capacity = %d, want %d", got, maxFlows)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	pkt := build(t, udp(self4, peer4, 0, 0))
	for range 200_000 {
		binary.BigEndian.PutUint32(pkt[16:], rng.Uint32()) // random destination
		binary.BigEndian.PutUint32(pkt[20:], rng.Uint32()) // random ports
		f.Outbound(pkt)
	}
	if got := f.Stats().Flows; got > maxFlows || got < maxFlows/2 {
		t.Errorf("Flows after flood = %d, want <= %d (and the table well used)", got, maxFlows)
	}
	slots := 0
	for i := range f.ct.shards {
		slots += len(f.ct.shards[i].buckets) * ways
	}
	if slots != maxFlows {
		t.Errorf("table holds %d slots, want %d", slots, maxFlows)
	}
	// The newest flow is always kept: eviction takes the least recently seen.
	rep := build(t, udp(netip.AddrFrom4([4]byte(pkt[16:20])).String(), self4, binary.BigEndian.Uint16(pkt[22:]), binary.BigEndian.Uint16(pkt[20:])))
	check(t, f, rep, Accept, ReasonReply)
}

func TestVictim(t *testing.T) {
	tr := newTracker(1, time.Now, defaultTimeouts)
	now := int64(10 * time.Hour)
	udpKey := flowKey{proto: protoUDP}
	full := func() *bucket {
		var b bucket
		for i := range b {
			b[i] = slot{key: udpKey, seen: now - int64(i+1)*int64(time.Second)}
		}
		return &b
	}
	tests := []struct {
		name string
		set  func(b *bucket)
		want int
	}{
		{"empty slot first", func(b *bucket) { b[5] = slot{} }, 5},
		{"expired slot first", func(b *bucket) { b[3].seen = now - int64(time.Hour) }, 3},
		{"else least recently seen", func(*bucket) {}, ways - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := full()
			tt.set(b)
			if got := tr.victim(b, now); got != &b[tt.want] {
				for i := range b {
					if got == &b[i] {
						t.Fatalf("victim = slot %d, want %d", i, tt.want)
					}
				}
				t.Fatalf("victim is not in the bucket")
			}
		})
	}
}

func TestOwnFlowTrackedAfterRevocation(t *testing.T) {
	all := []wire.FilterRule{rule(t, []string{peer4}, []string{self4 + " *"})}
	f := New(all)
	out := build(t, udp(self4, peer4, 5353, 53))
	in := build(t, udp(peer4, self4, 53, 5353))
	f.Outbound(out) // the rules admit the answer: nothing to track
	check(t, f, in, Accept, ReasonRule)
	f.SetRules(nil)
	check(t, f, in, Drop, ReasonNoRule)
	f.Outbound(out) // now the answer needs tracking
	check(t, f, in, Accept, ReasonReply)
}
