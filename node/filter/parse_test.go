package filter

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/warrenmesh/warren/internal/wire"
)

// extHdr returns an IPv6 extension header of n 8-byte units announcing next.
func extHdr(next uint8, n int) []byte {
	h := make([]byte, 8*n)
	h[0] = next
	h[1] = uint8(n - 1)
	return h
}

// v6With builds peer6 -> self6 with the given extension headers (each
// already pointing at the next) before a TCP header to port 22.
func v6With(first uint8, exts ...[]byte) []byte {
	var payload []byte
	for _, e := range exts {
		payload = append(payload, e...)
	}
	payload = append(payload, transport(tcp(peer6, self6, 1, 22, tcpSYN))...)
	return ipv6(netip.MustParseAddr(peer6), netip.MustParseAddr(self6), first, payload)
}

// cut6 truncates an IPv6 packet to n bytes and fixes its payload length, so
// only what the headers claim is out of bounds.
func cut6(b []byte, n int) []byte {
	b = append([]byte(nil), b[:n]...)
	binary.BigEndian.PutUint16(b[4:], uint16(n-ipv6HeaderLen))
	return b
}

func TestMalformed(t *testing.T) {
	good4 := build(t, tcp(peer4, self4, 1, 22, tcpSYN))
	good6 := build(t, tcp(peer6, self6, 1, 22, tcpSYN))
	mod := func(b []byte, f func(b []byte) []byte) []byte { return f(append([]byte(nil), b...)) }
	ah := make([]byte, 12) // AH: 12 bytes, length field 1 ((1+2)*4)
	ah[0], ah[1] = protoTCP, 1
	tests := []struct {
		name string
		pkt  []byte
		want Verdict
		why  Reason
	}{
		{"good IPv4", good4, Accept, ReasonRule},
		{"good IPv6", good6, Accept, ReasonRule},
		{"IPv4 with trailing padding", append(append([]byte(nil), good4...), 0, 0, 0), Accept, ReasonRule},
		{"IPv4 with options", mod(good4, func(b []byte) []byte {
			b = append(b[:20:20], append(make([]byte, 4), b[20:]...)...)
			b[0] = 0x46
			binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
			return b
		}), Accept, ReasonRule},
		{"empty", nil, Drop, ReasonMalformed},
		{"one byte", []byte{0x45}, Drop, ReasonMalformed},
		{"version 5", mod(good4, func(b []byte) []byte { b[0] = 0x55; return b }), Drop, ReasonMalformed},
		{"version 0", make([]byte, 60), Drop, ReasonMalformed},
		{"IPv4 short header", good4[:19], Drop, ReasonMalformed},
		{"IPv4 IHL 4", mod(good4, func(b []byte) []byte { b[0] = 0x44; return b }), Drop, ReasonMalformed},
		{"IPv4 IHL beyond buffer", mod(good4[:24], func(b []byte) []byte { b[0] = 0x4f; return b }), Drop, ReasonMalformed},
		{"IPv4 total length beyond buffer", mod(good4, func(b []byte) []byte { binary.BigEndian.PutUint16(b[2:], 1500); return b }), Drop, ReasonMalformed},
		{"IPv4 total length below IHL", mod(good4, func(b []byte) []byte { binary.BigEndian.PutUint16(b[2:], 19); return b }), Drop, ReasonMalformed},
		{"IPv4 TCP cut by total length", mod(good4, func(b []byte) []byte { binary.BigEndian.PutUint16(b[2:], 30); return b }), Drop, ReasonMalformed},
		{"IPv4 TCP truncated", good4[:39], Drop, ReasonMalformed},
		{"IPv4 UDP truncated", build(t, pk{src: peer4, dst: self4, proto: protoUDP, l4: make([]byte, 7)}), Drop, ReasonMalformed},
		{"IPv4 ICMP truncated", build(t, pk{src: peer4, dst: self4, proto: protoICMP, l4: make([]byte, 4)}), Drop, ReasonMalformed},
		{"IPv6 short header", good6[:39], Drop, ReasonMalformed},
		{"IPv6 payload length beyond buffer", mod(good6, func(b []byte) []byte { binary.BigEndian.PutUint16(b[4:], 100); return b }), Drop, ReasonMalformed},
		{"IPv6 TCP truncated", good6[:59], Drop, ReasonMalformed},
		{"IPv6 TCP cut by payload length", cut6(good6, 59), Drop, ReasonMalformed},
		{"IPv6 trailing bytes beyond payload length", append(append([]byte(nil), good6...), 1, 2), Accept, ReasonRule},
		{"IPv6 ICMPv6 truncated", build(t, pk{src: peer6, dst: self6, proto: protoICMPv6, l4: make([]byte, 7)}), Drop, ReasonMalformed},
		{"IPv6 hop-by-hop then dest opts", v6With(extHopByHop, extHdr(extDestOpts, 1), extHdr(protoTCP, 2)), Accept, ReasonRule},
		{"IPv6 routing header", v6With(extRouting, extHdr(protoTCP, 3)), Accept, ReasonRule},
		{"IPv6 AH", v6With(extAH, ah), Accept, ReasonRule},
		{"IPv6 eight dest opts", v6With(extDestOpts, extHdr(extDestOpts, 1), extHdr(extDestOpts, 1), extHdr(extDestOpts, 1),
			extHdr(extDestOpts, 1), extHdr(extDestOpts, 1), extHdr(extDestOpts, 1), extHdr(extDestOpts, 1), extHdr(protoTCP, 1)), Accept, ReasonRule},
		{"IPv6 nine dest opts", v6With(extDestOpts, extHdr(extDestOpts, 1), extHdr(extDestOpts, 1), extHdr(extDestOpts, 1),
			extHdr(extDestOpts, 1), extHdr(extDestOpts, 1), extHdr(extDestOpts, 1), extHdr(extDestOpts, 1), extHdr(extDestOpts, 1),
			extHdr(protoTCP, 1)), Drop, ReasonMalformed},
		{"IPv6 ext header chain runs off the end", cut6(v6With(extDestOpts, extHdr(extDestOpts, 1), extHdr(extDestOpts, 1)), 56), Drop, ReasonMalformed},
		{"IPv6 hop-by-hop not first", v6With(extDestOpts, extHdr(extHopByHop, 1), extHdr(protoTCP, 1)), Drop, ReasonMalformed},
		{"IPv6 ext header cut", cut6(v6With(extDestOpts, extHdr(protoTCP, 1)), 44), Drop, ReasonMalformed},
		{"IPv6 ext header claims too much", mod(v6With(extDestOpts, extHdr(protoTCP, 1)), func(b []byte) []byte { b[41] = 200; return b }), Drop, ReasonMalformed},
		{"IPv6 AH too long", mod(v6With(extAH, ah), func(b []byte) []byte { b[41] = 200; return b }), Drop, ReasonMalformed},
		{"IPv6 two fragment headers", v6With(extFragment, []byte{extFragment, 0, 0, 0, 0, 0, 0, 1}, []byte{protoTCP, 0, 0, 0, 0, 0, 0, 2}), Drop, ReasonMalformed},
		{"IPv6 mobility header", v6With(135, extHdr(protoTCP, 1)), Drop, ReasonMalformed},
		{"IPv6 no next header", ipv6(netip.MustParseAddr(peer6), netip.MustParseAddr(self6), 59, nil), Drop, ReasonNoRule},
	}
	f := New([]wire.FilterRule{rule(t, []string{peer4, peer6}, []string{self4 + " 22", self6 + " 22"})})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, f, tt.pkt, tt.want, tt.why)
			f.Outbound(tt.pkt) // never panics either
		})
	}
}

func TestMaskHelpers(t *testing.T) {
	tests := []struct {
		pfx    string
		lo, hi string
	}{
		{"0.0.0.0/0", "0.0.0.0", "255.255.255.255"},
		{"100.64.0.0/10", "100.64.0.0", "100.127.255.255"},
		{"100.64.0.7/32", "100.64.0.7", "100.64.0.7"},
		{"100.64.0.7/31", "100.64.0.6", "100.64.0.7"},
		{"::/0", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
		{"fd7a:115c:a1e0::/48", "fd7a:115c:a1e0::", "fd7a:115c:a1e0:ffff:ffff:ffff:ffff:ffff"},
		{"fd7a::/64", "fd7a::", "fd7a::ffff:ffff:ffff:ffff"},
		{"fd7a::1:0:0:0:0/65", "fd7a:0:0:1::", "fd7a:0:0:1:7fff:ffff:ffff:ffff"},
		{"fd7a::5/128", "fd7a::5", "fd7a::5"},
	}
	for _, tt := range tests {
		t.Run(tt.pfx, func(t *testing.T) {
			_, r := prefixRange(netip.MustParsePrefix(tt.pfx))
			lo, _ := fromAddr(netip.MustParseAddr(tt.lo))
			hi, _ := fromAddr(netip.MustParseAddr(tt.hi))
			if r.lo != lo || r.hi != hi {
				t.Errorf("range = %x-%x, want %x-%x", r.lo, r.hi, lo, hi)
			}
		})
	}
}
