package filter

import (
	"encoding/binary"
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/testclock"
	"github.com/warrenmesh/warren/internal/wire"
)

// pk describes a packet for build. Checksums are left zero: the filter never
// reads them.
type pk struct {
	src, dst     string
	proto        uint8
	sport, dport uint16
	flags        uint8  // TCP flags
	icmpType     uint8  // ICMP/ICMPv6 type
	icmpID       uint16 // echo identifier
	fragOff      uint16 // fragment offset in 8-byte units
	moreFrags    bool
	payload      []byte // after the transport header
	l4           []byte // when set, the whole transport part (replaces the above)
}

// build hand-assembles an IPv4 or IPv6 packet (IPv6 gets a Fragment header
// when fragOff or moreFrags is set).
func build(t testing.TB, p pk) []byte {
	t.Helper()
	src, err := netip.ParseAddr(p.src)
	if err != nil {
		t.Fatalf("build: src %q: %v", p.src, err)
	}
	dst, err := netip.ParseAddr(p.dst)
	if err != nil {
		t.Fatalf("build: dst %q: %v", p.dst, err)
	}
	l4 := p.l4
	if l4 == nil {
		l4 = transport(p)
	}
	if src.Is4() != dst.Is4() {
		t.Fatalf("build: mixed families %s -> %s", src, dst)
	}
	if src.Is4() {
		h := make([]byte, ipv4HeaderLen, ipv4HeaderLen+len(l4))
		h[0] = 0x45
		binary.BigEndian.PutUint16(h[2:], uint16(ipv4HeaderLen+len(l4)))
		fo := p.fragOff & 0x1fff
		if p.moreFrags {
			fo |= 0x2000
		}
		binary.BigEndian.PutUint16(h[6:], fo)
		h[8] = 64
		h[9] = p.proto
		s, d := src.As4(), dst.As4()
		copy(h[12:], s[:])
		copy(h[16:], d[:])
		return append(h, l4...)
	}
	var ext []byte
	next := p.proto
	if p.fragOff != 0 || p.moreFrags {
		ext = make([]byte, 8)
		ext[0] = p.proto
		fo := p.fragOff << 3
		if p.moreFrags {
			fo |= 1
		}
		binary.BigEndian.PutUint16(ext[2:], fo)
		next = extFragment
	}
	return ipv6(src, dst, next, append(ext, l4...))
}

// ipv6 prepends a fixed IPv6 header to payload (extension headers included).
func ipv6(src, dst netip.Addr, next uint8, payload []byte) []byte {
	h := make([]byte, ipv6HeaderLen, ipv6HeaderLen+len(payload))
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	h[6] = next
	h[7] = 64
	s, d := src.As16(), dst.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(h, payload...)
}

// transport builds the transport header of p followed by its payload.
func transport(p pk) []byte {
	var h []byte
	switch p.proto {
	case protoTCP:
		h = make([]byte, 20)
		h[12] = 5 << 4
		h[13] = p.flags
	case protoICMP, protoICMPv6:
		h = make([]byte, 8)
		h[0] = p.icmpType
		binary.BigEndian.PutUint16(h[4:], p.icmpID)
		return append(h, p.payload...)
	case protoSCTP, protoDCCP:
		h = make([]byte, 12)
	default:
		h = make([]byte, 8)
	}
	binary.BigEndian.PutUint16(h[0:], p.sport)
	binary.BigEndian.PutUint16(h[2:], p.dport)
	if p.proto == protoUDP {
		binary.BigEndian.PutUint16(h[4:], uint16(8+len(p.payload)))
	}
	return append(h, p.payload...)
}

// tcp, udp and echo are shorthands for common packets.
func tcp(src, dst string, sport, dport uint16, flags uint8) pk {
	return pk{src: src, dst: dst, proto: protoTCP, sport: sport, dport: dport, flags: flags}
}

func udp(src, dst string, sport, dport uint16) pk {
	return pk{src: src, dst: dst, proto: protoUDP, sport: sport, dport: dport}
}

func echo(src, dst string, typ uint8, id uint16) pk {
	proto := uint8(protoICMP)
	if netip.MustParseAddr(src).Is6() {
		proto = protoICMPv6
	}
	return pk{src: src, dst: dst, proto: proto, icmpType: typ, icmpID: id}
}

// rule builds a FilterRule from prefix strings ("100.64.0.1" means /32),
// destination "prefix:first-last" entries and protocol numbers.
func rule(t testing.TB, srcs []string, dsts []string, protos ...int) wire.FilterRule {
	t.Helper()
	r := wire.FilterRule{Protocols: protos}
	for _, s := range srcs {
		r.SrcPrefixes = append(r.SrcPrefixes, prefix(t, s))
	}
	for _, d := range dsts {
		r.DstPorts = append(r.DstPorts, portRange(t, d))
	}
	return r
}

// capRule builds a capability rule (as the coordinator sends for a
// grant's app capabilities) from srcs, giving a capability on self4 and
// self6; dsts, when given, are set too, which a well-formed capability
// rule never has.
func capRule(t testing.TB, srcs []string, dsts []string) wire.FilterRule {
	t.Helper()
	r := rule(t, srcs, dsts)
	r.CapGrant = []wire.CapGrant{{
		Dsts:   []netip.Prefix{prefix(t, self4), prefix(t, self6)},
		CapMap: map[string][]json.RawMessage{"example.com/cap/web": {json.RawMessage(`{"paths":["/"]}`)}},
	}}
	return r
}

// prefix parses "addr" or "addr/bits".
func prefix(t testing.TB, s string) netip.Prefix {
	t.Helper()
	if p, err := netip.ParsePrefix(s); err == nil {
		return p
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatalf("prefix %q: %v", s, err)
	}
	return netip.PrefixFrom(a, a.BitLen())
}

// portRange parses "prefix port", "prefix first-last" or "prefix *".
func portRange(t testing.TB, s string) wire.PortRange {
	t.Helper()
	pfx, ports, ok := strings.Cut(s, " ")
	if !ok {
		t.Fatalf("portRange %q: want \"prefix ports\"", s)
	}
	r := wire.PortRange{Prefix: prefix(t, pfx)}
	if ports == "*" {
		r.Last = 65535
		return r
	}
	first, last, ok := strings.Cut(ports, "-")
	if !ok {
		last = first
	}
	r.First, r.Last = atou16(t, first), atou16(t, last)
	return r
}

// atou16 parses a port number.
func atou16(t testing.TB, s string) uint16 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		t.Fatalf("port %q: %v", s, err)
	}
	return uint16(n)
}

// icmpErrorTB builds an ICMP error from `from` to `to` quoting quoted.
func icmpErrorTB(tb testing.TB, from, to string, typ uint8, quoted []byte) []byte {
	tb.Helper()
	p := echo(from, to, typ, 0)
	p.payload = quoted
	return build(tb, p)
}

// newFakeClock returns a settable clock for connection-tracking tests.
func newFakeClock() *testclock.Clock { return testclock.New(time.Unix(1_700_000_000, 0)) }

// check asserts Inbound's verdict and reason for one packet.
func check(t *testing.T, f *Filter, pkt []byte, wantV Verdict, wantR Reason) {
	t.Helper()
	v, r := f.Inbound(pkt)
	if v != wantV || r != wantR {
		t.Errorf("Inbound = %v/%q, want %v/%q", v, r, wantV, wantR)
	}
}
