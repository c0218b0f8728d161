package filter

import (
	"net/netip"
	"sync"
	"testing"

	"github.com/warrenmesh/warren/internal/wire"
)

const (
	self4 = "100.64.0.1"
	peer4 = "100.64.0.2"
	far4  = "100.100.9.9"
	self6 = "fd7a:115c:a1e0::1"
	peer6 = "fd7a:115c:a1e0::2"
)

func TestVerdictString(t *testing.T) {
	for v, want := range map[Verdict]string{Drop: "drop", Accept: "accept", Verdict(7): "unknown"} {
		if got := v.String(); got != want {
			t.Errorf("Verdict(%d).String() = %q, want %q", int(v), got, want)
		}
	}
}

func TestInboundRules(t *testing.T) {
	ssh := rule(t, []string{peer4}, []string{self4 + " 22"})
	tests := []struct {
		name   string
		rules  []wire.FilterRule
		pkt    pk
		want   Verdict
		reason Reason
	}{
		{"empty rules deny", nil, tcp(peer4, self4, 1000, 22, tcpSYN), Drop, ReasonNoRule},
		{"empty rule list entry denies", []wire.FilterRule{{}}, tcp(peer4, self4, 1000, 22, tcpSYN), Drop, ReasonNoRule},
		{"exact /32 and port", []wire.FilterRule{ssh}, tcp(peer4, self4, 1000, 22, tcpSYN), Accept, ReasonRule},
		{"mid-connection segment checked too", []wire.FilterRule{ssh}, tcp(peer4, self4, 1000, 22, tcpACK), Accept, ReasonRule},
		{"other source", []wire.FilterRule{ssh}, tcp("100.64.0.3", self4, 1000, 22, tcpSYN), Drop, ReasonNoRule},
		{"other port", []wire.FilterRule{ssh}, tcp(peer4, self4, 1000, 23, tcpSYN), Drop, ReasonNoRule},
		{"other destination", []wire.FilterRule{ssh}, tcp(peer4, "100.64.0.9", 1000, 22, tcpSYN), Drop, ReasonNoRule},
		{"source port is not destination port", []wire.FilterRule{ssh}, tcp(peer4, self4, 22, 1000, tcpSYN), Drop, ReasonNoRule},
		{"CIDR source", []wire.FilterRule{rule(t, []string{"100.64.0.0/10"}, []string{self4 + " 80"})},
			tcp(far4, self4, 1000, 80, tcpSYN), Accept, ReasonRule},
		{"CIDR source outside", []wire.FilterRule{rule(t, []string{"100.64.0.0/10"}, []string{self4 + " 80"})},
			tcp("100.128.0.1", self4, 1000, 80, tcpSYN), Drop, ReasonNoRule},
		{"CIDR destination", []wire.FilterRule{rule(t, []string{peer4}, []string{"10.0.0.0/8 443"})},
			tcp(peer4, "10.1.2.3", 1000, 443, tcpSYN), Accept, ReasonRule},
		{"any source /0", []wire.FilterRule{rule(t, []string{"0.0.0.0/0"}, []string{self4 + " 443"})},
			tcp("8.8.8.8", self4, 1000, 443, tcpSYN), Accept, ReasonRule},
		{"range low edge", []wire.FilterRule{rule(t, []string{peer4}, []string{self4 + " 8000-8100"})},
			tcp(peer4, self4, 1, 8000, 0), Accept, ReasonRule},
		{"range high edge", []wire.FilterRule{rule(t, []string{peer4}, []string{self4 + " 8000-8100"})},
			udp(peer4, self4, 1, 8100), Accept, ReasonRule},
		{"range below", []wire.FilterRule{rule(t, []string{peer4}, []string{self4 + " 8000-8100"})},
			tcp(peer4, self4, 1, 7999, 0), Drop, ReasonNoRule},
		{"range above", []wire.FilterRule{rule(t, []string{peer4}, []string{self4 + " 8000-8100"})},
			tcp(peer4, self4, 1, 8101, 0), Drop, ReasonNoRule},
		{"port 0 and 65535 with *", []wire.FilterRule{rule(t, []string{peer4}, []string{self4 + " *"})},
			udp(peer4, self4, 1, 65535), Accept, ReasonRule},
		{"second rule matches", []wire.FilterRule{ssh, rule(t, []string{"100.64.0.3"}, []string{self4 + " 80"})},
			tcp("100.64.0.3", self4, 1, 80, tcpSYN), Accept, ReasonRule},
		{"rules do not combine across fields", []wire.FilterRule{ssh, rule(t, []string{"100.64.0.3"}, []string{self4 + " 80"})},
			tcp("100.64.0.3", self4, 1, 22, tcpSYN), Drop, ReasonNoRule},
		{"overlapping ranges, inner source", []wire.FilterRule{
			rule(t, []string{peer4}, []string{self4 + " 1000-2000"}),
			rule(t, []string{"100.64.0.3"}, []string{self4 + " 1500-1600"}),
			rule(t, []string{"100.64.0.4"}, []string{self4 + " 10-60000"})},
			tcp("100.64.0.3", self4, 1, 1550, 0), Accept, ReasonRule},
		{"overlapping ranges, outer source in inner", []wire.FilterRule{
			rule(t, []string{peer4}, []string{self4 + " 1000-2000"}),
			rule(t, []string{"100.64.0.3"}, []string{self4 + " 1500-1600"})},
			tcp(peer4, self4, 1, 1599, 0), Accept, ReasonRule},
		{"overlapping ranges, inner source outside", []wire.FilterRule{
			rule(t, []string{peer4}, []string{self4 + " 1000-2000"}),
			rule(t, []string{"100.64.0.3"}, []string{self4 + " 1500-1600"})},
			tcp("100.64.0.3", self4, 1, 1601, 0), Drop, ReasonNoRule},
		{"nested destination prefixes", []wire.FilterRule{
			rule(t, []string{peer4}, []string{"10.0.0.0/8 80"}),
			rule(t, []string{"100.64.0.3"}, []string{"10.1.0.0/16 81"})},
			tcp(peer4, "10.1.2.3", 1, 80, 0), Accept, ReasonRule},
		{"only UDP: UDP ok", []wire.FilterRule{rule(t, []string{peer4}, []string{self4 + " 53"}, protoUDP)},
			udp(peer4, self4, 5353, 53), Accept, ReasonRule},
		{"only UDP: TCP denied", []wire.FilterRule{rule(t, []string{peer4}, []string{self4 + " 53"}, protoUDP)},
			tcp(peer4, self4, 5353, 53, tcpSYN), Drop, ReasonNoRule},
		{"only UDP: ICMP denied", []wire.FilterRule{rule(t, []string{peer4}, []string{self4 + " 53"}, protoUDP)},
			echo(peer4, self4, icmp4EchoRequest, 1), Drop, ReasonNoRule},
		{"default set has UDP", []wire.FilterRule{ssh}, udp(peer4, self4, 1, 22), Accept, ReasonRule},
		{"default set has ICMP", []wire.FilterRule{ssh}, echo(peer4, self4, icmp4EchoRequest, 9), Accept, ReasonRule},
		{"default set lacks SCTP", []wire.FilterRule{ssh}, pk{src: peer4, dst: self4, proto: protoSCTP, sport: 1, dport: 22}, Drop, ReasonNoRule},
		{"explicit SCTP", []wire.FilterRule{rule(t, []string{peer4}, []string{self4 + " 22"}, protoSCTP)},
			pk{src: peer4, dst: self4, proto: protoSCTP, sport: 1, dport: 22}, Accept, ReasonRule},
		{"portless protocol needs all ports", []wire.FilterRule{rule(t, []string{peer4}, []string{self4 + " 22"}, 47)},
			pk{src: peer4, dst: self4, proto: 47, l4: make([]byte, 8)}, Drop, ReasonNoRule},
		{"portless protocol with *", []wire.FilterRule{rule(t, []string{peer4}, []string{self4 + " *"}, 47)},
			pk{src: peer4, dst: self4, proto: 47, l4: make([]byte, 8)}, Accept, ReasonRule},
		{"ICMP ignores ports", []wire.FilterRule{rule(t, []string{peer4}, []string{self4 + " 443"}, protoICMP)},
			echo(peer4, self4, icmp4EchoRequest, 3), Accept, ReasonRule},
		{"ICMP checks destination prefix", []wire.FilterRule{rule(t, []string{peer4}, []string{self4 + " 443"}, protoICMP)},
			echo(peer4, "100.64.0.8", icmp4EchoRequest, 3), Drop, ReasonNoRule},
		{"ICMP checks source", []wire.FilterRule{rule(t, []string{peer4}, []string{self4 + " 443"})},
			echo("100.64.0.3", self4, icmp4EchoRequest, 3), Drop, ReasonNoRule},
		{"IPv6 exact", []wire.FilterRule{rule(t, []string{peer6}, []string{self6 + " 22"})},
			tcp(peer6, self6, 1000, 22, tcpSYN), Accept, ReasonRule},
		{"IPv6 CIDR", []wire.FilterRule{rule(t, []string{"fd7a:115c:a1e0::/48"}, []string{self6 + " 22"})},
			tcp("fd7a:115c:a1e0:ffff::77", self6, 1000, 22, tcpSYN), Accept, ReasonRule},
		{"IPv6 CIDR outside", []wire.FilterRule{rule(t, []string{"fd7a:115c:a1e0::/48"}, []string{self6 + " 22"})},
			tcp("fd7a:115c:a1e1::77", self6, 1000, 22, tcpSYN), Drop, ReasonNoRule},
		{"IPv6 /127 source", []wire.FilterRule{rule(t, []string{"fd7a:115c:a1e0::2/127"}, []string{self6 + " 22"})},
			tcp("fd7a:115c:a1e0::3", self6, 1000, 22, tcpSYN), Accept, ReasonRule},
		{"IPv6 ICMPv6 echo by prefix", []wire.FilterRule{rule(t, []string{peer6}, []string{self6 + " 80"})},
			echo(peer6, self6, icmp6EchoRequest, 3), Accept, ReasonRule},
		{"IPv4 rule does not admit IPv6", []wire.FilterRule{ssh}, tcp(peer6, self6, 1000, 22, tcpSYN), Drop, ReasonNoRule},
		{"IPv4 source on IPv6 destination ignored", []wire.FilterRule{rule(t, []string{peer4}, []string{self6 + " 22"})},
			tcp(peer6, self6, 1000, 22, tcpSYN), Drop, ReasonNoRule},
		{"mixed-family rule", []wire.FilterRule{rule(t, []string{peer4, peer6}, []string{self4 + " 22", self6 + " 22"})},
			tcp(peer6, self6, 1000, 22, tcpSYN), Accept, ReasonRule},
		{"invalid entries skipped", []wire.FilterRule{
			{SrcPrefixes: []netip.Prefix{{}}, DstPorts: []wire.PortRange{{Prefix: prefix(t, self4), Last: 65535}}},
			{SrcPrefixes: []netip.Prefix{prefix(t, peer4)}, DstPorts: []wire.PortRange{{Prefix: prefix(t, self4), First: 30, Last: 20}}},
			{SrcPrefixes: []netip.Prefix{prefix(t, peer4)}, DstPorts: []wire.PortRange{{Prefix: prefix(t, self4), Last: 65535}}, Protocols: []int{-1, 256}}},
			tcp(peer4, self4, 1000, 25, tcpSYN), Drop, ReasonNoRule},
		{"capability rule allows nothing", []wire.FilterRule{capRule(t, []string{peer4}, nil)},
			tcp(peer4, self4, 1000, 443, tcpSYN), Drop, ReasonNoRule},
		{"capability rule allows no ICMP", []wire.FilterRule{capRule(t, []string{"0.0.0.0/0"}, nil)},
			echo(peer4, self4, icmp4EchoRequest, 3), Drop, ReasonNoRule},
		{"capability rule with ports allows nothing", []wire.FilterRule{capRule(t, []string{peer4}, []string{self4 + " *"})},
			tcp(peer4, self4, 1000, 443, tcpSYN), Drop, ReasonNoRule},
		{"capability rule beside a port rule", []wire.FilterRule{capRule(t, []string{peer4}, nil), ssh},
			tcp(peer4, self4, 1000, 22, tcpSYN), Accept, ReasonRule},
		{"unmasked prefixes are masked", []wire.FilterRule{{
			SrcPrefixes: []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr("100.64.0.77"), 24)},
			DstPorts:    []wire.PortRange{{Prefix: netip.PrefixFrom(netip.MustParseAddr(self4), 24), First: 80, Last: 80}}}},
			tcp(peer4, "100.64.0.200", 1, 80, tcpSYN), Accept, ReasonRule},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New(tt.rules)
			check(t, f, build(t, tt.pkt), tt.want, tt.reason)
		})
	}
}

func TestSetRulesRevokes(t *testing.T) {
	ssh := []wire.FilterRule{rule(t, []string{peer4}, []string{self4 + " 22"})}
	web := []wire.FilterRule{rule(t, []string{peer4}, []string{self4 + " 80"})}
	f := New(ssh)
	syn := build(t, tcp(peer4, self4, 40000, 22, tcpSYN))
	data := build(t, tcp(peer4, self4, 40000, 22, tcpACK|0x08))
	check(t, f, syn, Accept, ReasonRule)
	// This node answers the peer's connection: that must not create state
	// that outlives the rule.
	f.Outbound(build(t, tcp(self4, peer4, 22, 40000, tcpSYN|tcpACK)))
	f.Outbound(build(t, tcp(self4, peer4, 22, 40000, tcpACK)))
	check(t, f, data, Accept, ReasonRule)

	f.SetRules(web)
	check(t, f, data, Drop, ReasonNoRule)
	check(t, f, build(t, tcp(peer4, self4, 40000, 80, tcpSYN)), Accept, ReasonRule)

	f.SetRules(nil)
	check(t, f, build(t, tcp(peer4, self4, 40000, 80, tcpSYN)), Drop, ReasonNoRule)
}

func TestUDPServerRepliesDoNotOutliveRevocation(t *testing.T) {
	dns := []wire.FilterRule{rule(t, []string{peer4}, []string{self4 + " 53"}, protoUDP)}
	f := New(dns)
	q := build(t, udp(peer4, self4, 5353, 53))
	check(t, f, q, Accept, ReasonRule)
	f.Outbound(build(t, udp(self4, peer4, 53, 5353))) // the answer: admitted reverse, not tracked
	if got := f.Stats().Flows; got != 0 {
		t.Fatalf("answer to an admitted flow tracked %d flows, want 0", got)
	}
	f.SetRules(nil)
	check(t, f, q, Drop, ReasonNoRule)
}

func TestFragments(t *testing.T) {
	sshOnly := []wire.FilterRule{rule(t, []string{peer4, peer6}, []string{self4 + " 22", self6 + " 22"})}
	allPorts := []wire.FilterRule{rule(t, []string{peer4, peer6}, []string{self4 + " *", self6 + " *"})}
	udpAll := []wire.FilterRule{rule(t, []string{peer4, peer6}, []string{self4 + " *", self6 + " *"}, protoUDP)}
	frag := func(p pk, off uint16, more bool) pk { p.fragOff, p.moreFrags = off, more; return p }
	tests := []struct {
		name   string
		rules  []wire.FilterRule
		pkt    pk
		want   Verdict
		reason Reason
	}{
		{"v4 first fragment parsed", sshOnly, frag(tcp(peer4, self4, 1, 22, tcpSYN), 0, true), Accept, ReasonRule},
		{"v4 first fragment other port", sshOnly, frag(tcp(peer4, self4, 1, 23, tcpSYN), 0, true), Drop, ReasonNoRule},
		{"v4 later fragment, port rule", sshOnly, frag(udp(peer4, self4, 1, 22), 100, false), Drop, ReasonFragment},
		{"v4 later fragment, all-ports rule", allPorts, frag(udp(peer4, self4, 1, 22), 100, false), Accept, ReasonRule},
		{"v4 later fragment, all ports other proto", udpAll, frag(tcp(peer4, self4, 1, 22, 0), 3, true), Drop, ReasonFragment},
		{"v4 later fragment, other source", allPorts, frag(udp("100.64.0.3", self4, 1, 22), 1, false), Drop, ReasonFragment},
		{"v4 ICMP later fragment, port rule", sshOnly, frag(echo(peer4, self4, icmp4EchoRequest, 1), 100, false), Accept, ReasonRule},
		{"v6 atomic fragment parsed", sshOnly, frag(tcp(peer6, self6, 1, 22, tcpSYN), 0, false), Accept, ReasonRule},
		{"v6 first fragment parsed", sshOnly, frag(tcp(peer6, self6, 1, 22, tcpSYN), 0, true), Accept, ReasonRule},
		{"v6 later fragment, port rule", sshOnly, frag(udp(peer6, self6, 1, 22), 100, false), Drop, ReasonFragment},
		{"v6 later fragment, all-ports rule", allPorts, frag(udp(peer6, self6, 1, 22), 100, false), Accept, ReasonRule},
		{"v4 first fragment too short for ports", sshOnly,
			pk{src: peer4, dst: self4, proto: protoTCP, moreFrags: true, l4: []byte{0, 1, 0}}, Drop, ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, New(tt.rules), build(t, tt.pkt), tt.want, tt.reason)
		})
	}
}

func TestConcurrentSetRulesInbound(t *testing.T) {
	a := []wire.FilterRule{rule(t, []string{peer4}, []string{self4 + " 22"})}
	b := []wire.FilterRule{rule(t, []string{peer4}, []string{self4 + " 80"})}
	f := New(a)
	p22 := build(t, tcp(peer4, self4, 1, 22, tcpSYN))
	p80 := build(t, tcp(peer4, self4, 1, 80, tcpSYN))
	p443 := build(t, tcp(peer4, self4, 1, 443, tcpSYN))
	out := build(t, udp(self4, peer4, 1000, 53))
	const rounds = 2000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range rounds {
			if i%2 == 0 {
				f.SetRules(b)
			} else {
				f.SetRules(a)
			}
		}
	}()
	errs := make(chan string, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				f.Inbound(p22)
				f.Inbound(p80)
				f.Outbound(out)
				if v, _ := f.Inbound(p443); v != Drop {
					errs <- "port 443 accepted while no rule admits it"
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	f.SetRules(b)
	check(t, f, p80, Accept, ReasonRule)
	check(t, f, p22, Drop, ReasonNoRule)
}

func TestZeroFilterDenies(t *testing.T) {
	var f Filter
	f.Outbound(build(t, udp(self4, peer4, 1000, 53)))
	check(t, &f, build(t, udp(peer4, self4, 53, 1000)), Drop, ReasonNoRule)
	if s := f.Stats(); s.Flows != 0 || s.Dropped[ReasonNoRule] != 1 {
		t.Errorf("Stats = %+v, want no flows and 1 no-rule drop", s)
	}
}

func TestStats(t *testing.T) {
	f := New([]wire.FilterRule{rule(t, []string{peer4}, []string{self4 + " 22"})})
	f.Inbound(build(t, tcp(peer4, self4, 1, 22, tcpSYN)))
	f.Inbound(build(t, tcp(peer4, self4, 1, 23, tcpSYN)))
	f.Inbound(nil)
	f.Inbound([]byte{0x45})
	f.Outbound(build(t, udp(self4, peer4, 1000, 53)))
	f.Inbound(build(t, udp(peer4, self4, 53, 1000)))
	s := f.Stats()
	want := map[Reason]uint64{ReasonRule: 1, ReasonReply: 1, ReasonRelated: 0}
	for r, n := range want {
		if s.Accepted[r] != n {
			t.Errorf("Accepted[%s] = %d, want %d", r, s.Accepted[r], n)
		}
	}
	wantD := map[Reason]uint64{ReasonNoRule: 1, ReasonMalformed: 2, ReasonFragment: 0}
	for r, n := range wantD {
		if s.Dropped[r] != n {
			t.Errorf("Dropped[%s] = %d, want %d", r, s.Dropped[r], n)
		}
	}
	if s.Flows != 1 || s.MaxFlows != defaultMaxFlows {
		t.Errorf("Flows, MaxFlows = %d, %d; want 1, %d", s.Flows, s.MaxFlows, defaultMaxFlows)
	}
}

func TestNoAllocations(t *testing.T) {
	f := New([]wire.FilterRule{
		rule(t, []string{peer4, peer6}, []string{self4 + " 22", self6 + " 22"}),
		rule(t, []string{"100.64.0.0/10"}, []string{self4 + " 1000-2000", "10.0.0.0/8 *"}),
	})
	out := build(t, udp(self4, peer4, 1000, 53))
	f.Outbound(out) // allocates the shard's buckets once
	pkts := map[string][]byte{
		"accept v4": build(t, tcp(peer4, self4, 1, 22, tcpACK)),
		"accept v6": build(t, tcp(peer6, self6, 1, 22, tcpACK)),
		"drop":      build(t, tcp(peer4, self4, 1, 23, tcpACK)),
		"reply":     build(t, udp(peer4, self4, 53, 1000)),
		"malformed": {0x45, 0, 0},
		"fragment":  build(t, pk{src: peer4, dst: self4, proto: protoUDP, fragOff: 9, l4: make([]byte, 8)}),
	}
	for name, p := range pkts {
		if n := testing.AllocsPerRun(100, func() { f.Inbound(p) }); n != 0 {
			t.Errorf("Inbound(%s): %v allocations per packet, want 0", name, n)
		}
	}
	if n := testing.AllocsPerRun(100, func() { f.Outbound(out) }); n != 0 {
		t.Errorf("Outbound: %v allocations per packet, want 0", n)
	}
}

func TestReasonIndexes(t *testing.T) {
	for i, r := range reasons {
		if got := reasonIndex(r); got != i {
			t.Errorf("reasonIndex(%q) = %d, want %d", r, got, i)
		}
	}
	if reasons[reasonIndexRule] != ReasonRule || reasons[reasonIndexNoRule] != ReasonNoRule || reasons[reasonIndexFragment] != ReasonFragment {
		t.Errorf("reasonIndex constants do not index their reasons")
	}
}
