package filter

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/warrenmesh/warren/internal/wire"
)

// FuzzInbound feeds arbitrary bytes to Outbound and Inbound (with flow
// accounting on): they must never panic, never modify the packet, and give
// reasons that match the verdict; the flow records account for every
// packet accepted by a rule or denied for no rule.
func FuzzInbound(f *testing.F) {
	seeds := []pk{
		tcp(peer4, self4, 1, 22, tcpSYN),
		udp(peer4, self4, 53, 5353),
		echo(peer4, self4, icmp4EchoRequest, 1),
		echo(peer4, self4, icmp4EchoReply, 1),
		tcp(peer6, self6, 1, 22, tcpSYN|tcpACK),
		udp(peer6, self6, 53, 5353),
		echo(peer6, self6, icmp6EchoReply, 1),
		{src: peer4, dst: self4, proto: protoUDP, fragOff: 5, l4: make([]byte, 8)},
		{src: peer6, dst: self6, proto: protoTCP, sport: 1, dport: 22, moreFrags: true},
		{src: peer6, dst: self6, proto: protoSCTP, sport: 1, dport: 22},
	}
	for _, s := range seeds {
		f.Add(build(f, s))
	}
	quoted := build(f, udp(self4, peer4, 5353, 53))
	f.Add(icmpErrorTB(f, peer4, self4, icmp4Unreachable, quoted))
	f.Add(icmpErrorTB(f, peer6, self6, icmp6PacketTooBig, build(f, tcp(self6, peer6, 1, 2, tcpSYN))))
	f.Add(v6With(extHopByHop, extHdr(extRouting, 1), extHdr(extFragment, 1), []byte{protoTCP, 0, 0, 0, 0, 0, 0, 0}))
	f.Add([]byte{})
	f.Add([]byte{0x45})
	f.Add([]byte{0x60, 0, 0, 0, 0, 0, 0, 0})

	rules := []wire.FilterRule{
		rule(f, []string{"100.64.0.0/10", "fd7a:115c:a1e0::/48"}, []string{self4 + " 22", self6 + " 22", self4 + " 1000-2000"}),
		rule(f, []string{peer4, peer6}, []string{"0.0.0.0/0 *", "::/0 *"}, protoUDP),
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		flt := NewWithFlows(rules, FlowConfig{MaxDenies: 16})
		before := bytes.Clone(data)
		flt.Outbound(data)
		v, r := flt.Inbound(data)
		if !bytes.Equal(before, data) {
			t.Fatalf("filter modified the packet")
		}
		accepted := r == ReasonRule || r == ReasonReply || r == ReasonRelated
		if (v == Accept) != accepted {
			t.Fatalf("verdict %v with reason %q", v, r)
		}
		var p packet
		if v == Accept && !p.parse(data, false) {
			t.Fatalf("accepted a packet that does not parse")
		}
		// The same bytes as the quote of an ICMP error must not panic either.
		for _, outer := range [][]byte{
			icmpQuote(t, false, data),
			icmpQuote(t, true, data),
		} {
			flt.Inbound(outer)
		}
		st := flt.Stats()
		var logged uint64
		for _, rec := range flt.CollectFlows(true) {
			if rec.PacketsIn == 0 || (rec.Verdict != "accept" && rec.Verdict != "deny") {
				t.Fatalf("bad record %+v", rec)
			}
			logged += rec.PacketsIn
		}
		if want := st.Accepted[ReasonRule] + st.Dropped[ReasonNoRule] + st.Dropped[ReasonFragment]; logged+st.FlowsDropped+st.DeniesDropped != want {
			t.Fatalf("records count %d packets (+%d dropped), the filter decided %d", logged, st.FlowsDropped+st.DeniesDropped, want)
		}
	})
}

// FuzzCompiledMatchesReference drives the random rule/packet comparison of
// TestCompiledMatchesReference from fuzzer-chosen seeds.
func FuzzCompiledMatchesReference(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Fuzz(func(t *testing.T, a, b uint64) {
		r := rand.New(rand.NewPCG(a, b))
		rules := randRules(r, 1+r.IntN(8))
		rs := compile(rules)
		protos := []uint8{protoTCP, protoUDP, protoICMP, protoICMPv6, 47}
		for range 50 {
			v6 := r.IntN(2) == 0
			src, dst := randAddr(r, v6), randAddr(r, v6)
			proto := protos[r.IntN(len(protos))]
			port := -1
			if hasPorts(proto) {
				port = int(randPort(r))
			}
			s, _ := fromAddr(src)
			d, _ := fromAddr(dst)
			if got, want := rs.allows(v6, proto, s, d, port), reference(rules, proto, src, dst, port); got != want {
				t.Fatalf("allows(proto %d, %s -> %s port %d) = %v, reference %v; rules %v", proto, src, dst, port, got, want, rules)
			}
		}
	})
}

// icmpQuote wraps data as the quote of an ICMP(v6) destination unreachable
// from peer to self.
func icmpQuote(tb testing.TB, v6 bool, data []byte) []byte {
	tb.Helper()
	if v6 {
		return icmpErrorTB(tb, peer6, self6, icmp6Unreachable, data)
	}
	return icmpErrorTB(tb, peer4, self4, icmp4Unreachable, data)
}
