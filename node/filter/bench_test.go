package filter

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/warrenmesh/warren/internal/wire"
)

// benchRules makes n rules, each admitting one random /32 source in the mesh
// range to one random port (or, one in four, a small range) on this node. It
// returns the rules and a packet the last rule admits.
func benchRules(b *testing.B, n int) ([]wire.FilterRule, []byte) {
	b.Helper()
	r := rand.New(rand.NewPCG(uint64(n), 42))
	self := netip.MustParseAddr(self4)
	rules := make([]wire.FilterRule, n)
	var last []byte
	for i := range rules {
		src := netip.AddrFrom4([4]byte{100, byte(64 + r.IntN(64)), byte(r.IntN(256)), byte(1 + r.IntN(254))})
		first := uint16(1 + r.IntN(65000))
		last16 := first
		if r.IntN(4) == 0 {
			last16 = first + uint16(r.IntN(100))
		}
		rules[i] = wire.FilterRule{
			SrcPrefixes: []netip.Prefix{netip.PrefixFrom(src, 32)},
			DstPorts:    []wire.PortRange{{Prefix: netip.PrefixFrom(self, 32), First: first, Last: last16}},
		}
		if i == n-1 {
			last = build(b, tcp(src.String(), self4, 40000, last16, tcpACK))
		}
	}
	return rules, last
}

func BenchmarkInbound(b *testing.B) {
	for _, n := range []int{10, 100, 1000, 10000} {
		rules, match := benchRules(b, n)
		f := New(rules)
		if v, r := f.Inbound(match); v != Accept {
			b.Fatalf("bench packet dropped: %s", r)
		}
		none := build(b, tcp("100.127.255.255", self4, 40000, 65535, tcpACK))
		if v, _ := f.Inbound(none); v != Drop {
			b.Fatalf("no-match packet accepted")
		}
		for _, c := range []struct {
			name string
			pkt  []byte
		}{{"match-last", match}, {"match-none", none}} {
			b.Run(fmt.Sprintf("rules=%d/%s", n, c.name), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(c.pkt)))
				for b.Loop() {
					f.Inbound(c.pkt)
				}
			})
		}
	}
}

// BenchmarkInboundFlows is the per-packet cost of flow accounting: the
// same packets through a filter without it (flows=off, the baseline) and
// with it (flows=on), in one run. Report on/off as the ratio. The accepted
// packets belong to one flow, as a bulk transfer's do; the reply is this
// node's answer on it (Outbound); the denied packets (a mid-connection
// segment, and a SYN as scans send) are aggregated.
func BenchmarkInboundFlows(b *testing.B) {
	rules, match := benchRules(b, 1000)
	for i := range rules {
		rules[i].Rule = fmt.Sprintf("acls[%d]", i)
	}
	none := build(b, tcp("100.127.255.255", self4, 40000, 65535, tcpACK))
	syn := build(b, tcp("100.127.255.255", self4, 40000, 65535, tcpSYN))
	var p packet
	if !p.parse(match, false) {
		b.Fatal("bench packet does not parse")
	}
	src := toAddr(p.src, false).String()
	reply := build(b, tcp(self4, src, p.dport, p.sport, tcpACK))
	for _, c := range []struct {
		name string
		pkt  []byte
		out  bool
	}{{"match-last", match, false}, {"reply", reply, true}, {"match-none", none, false}, {"match-none-syn", syn, false}} {
		for _, flows := range []bool{false, true} {
			f := New(rules)
			if flows {
				f = NewWithFlows(rules, FlowConfig{})
			}
			f.Inbound(match)
			mode := "off"
			if flows {
				mode = "on"
			}
			b.Run(fmt.Sprintf("%s/flows=%s", c.name, mode), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(c.pkt)))
				for b.Loop() {
					if c.out {
						f.Outbound(c.pkt)
					} else {
						f.Inbound(c.pkt)
					}
				}
			})
		}
	}
}

func BenchmarkInboundReply(b *testing.B) {
	rules, _ := benchRules(b, 1000)
	f := New(rules)
	f.Outbound(build(b, udp(self4, peer4, 5353, 53)))
	in := build(b, udp(peer4, self4, 53, 5353))
	if v, _ := f.Inbound(in); v != Accept {
		b.Fatal("reply dropped")
	}
	b.ReportAllocs()
	for b.Loop() {
		f.Inbound(in)
	}
}

func BenchmarkInboundParallel(b *testing.B) {
	rules, match := benchRules(b, 1000)
	f := New(rules)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			f.Inbound(match)
		}
	})
}

func BenchmarkOutbound(b *testing.B) {
	b.Run("existing-flow", func(b *testing.B) {
		f := New(nil)
		out := build(b, tcp(self4, peer4, 40000, 22, tcpSYN))
		f.Outbound(out)
		out = build(b, tcp(self4, peer4, 40000, 22, tcpACK))
		b.ReportAllocs()
		for b.Loop() {
			f.Outbound(out)
		}
	})
	b.Run("new-flows", func(b *testing.B) {
		f := New(nil)
		out := build(b, udp(self4, peer4, 0, 0))
		i := uint32(0)
		b.ReportAllocs()
		for b.Loop() {
			i++
			binary.BigEndian.PutUint32(out[20:], i*2654435761) // fresh ports each packet
			f.Outbound(out)
		}
	})
}

func BenchmarkSetRules(b *testing.B) {
	for _, n := range []int{100, 10000} {
		rules, _ := benchRules(b, n)
		f := New(nil)
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				f.SetRules(rules)
			}
		})
	}
}

// BenchmarkDenyAdd is the deny accounting alone: one aggregate hit again
// and again (a flood), the further ports of a scan (the shared aggregate),
// and the same flood from every CPU at once.
func BenchmarkDenyAdd(b *testing.B) {
	var p packet
	if !p.parse(build(b, tcp("100.127.255.255", self4, 40000, 65535, tcpSYN)), false) {
		b.Fatal("bench packet does not parse")
	}
	b.Run("flood", func(b *testing.B) {
		var d denyTable
		d.init(defaultMaxDenies)
		b.ReportAllocs()
		for b.Loop() {
			d.add(&p, 40, reasonIndexNoRule, 1)
		}
	})
	b.Run("scan", func(b *testing.B) {
		var d denyTable
		d.init(defaultMaxDenies)
		q := p
		for port := range maxDenyPorts + 1 {
			q.dport = uint16(port)
			d.add(&q, 40, reasonIndexNoRule, 1)
		}
		b.ReportAllocs()
		for b.Loop() {
			q.dport++
			d.add(&q, 40, reasonIndexNoRule, 1)
		}
	})
	b.Run("flood-parallel", func(b *testing.B) {
		var d denyTable
		d.init(defaultMaxDenies)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				d.add(&p, 40, reasonIndexNoRule, 1)
			}
		})
	})
}
