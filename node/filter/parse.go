package filter

import (
	"encoding/binary"
	"net/netip"
)

// IANA protocol numbers the filter treats specially.
const (
	protoICMP    = 1
	protoTCP     = 6
	protoUDP     = 17
	protoDCCP    = 33
	protoICMPv6  = 58
	protoSCTP    = 132
	protoUDPLite = 136
)

// IPv6 extension headers the parser walks.
const (
	extHopByHop = 0
	extRouting  = 43
	extFragment = 44
	extAH       = 51
	extDestOpts = 60
)

// maxExtHeaders bounds the IPv6 extension header chain. Real traffic carries
// one or two; a longer chain is treated as malformed.
const maxExtHeaders = 8

// TCP flag bits (byte 13 of the TCP header).
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

// ICMP message types the filter looks at.
const (
	icmp4EchoReply     = 0
	icmp4Unreachable   = 3
	icmp4EchoRequest   = 8
	icmp4TimeExceeded  = 11
	icmp4ParamProblem  = 12
	icmp6Unreachable   = 1
	icmp6PacketTooBig  = 2
	icmp6TimeExceeded  = 3
	icmp6ParamProblem  = 4
	icmp6EchoRequest   = 128
	icmp6EchoReply     = 129
	icmpHeaderLen      = 8
	ipv4HeaderLen      = 20
	ipv6HeaderLen      = 40
	ipv6ExtHeaderMin   = 8
	embeddedL4MinBytes = 8 // what an ICMP error is guaranteed to quote
)

// u128 is an IP address as a 128-bit number. IPv4 addresses live in the low
// 32 bits; the family is always carried alongside, never inferred.
type u128 struct{ hi, lo uint64 }

// less reports whether a sorts before b.
func (a u128) less(b u128) bool { return a.hi < b.hi || a.hi == b.hi && a.lo < b.lo }

// netmask keeps the first bits bits of a (bits is within the family width).
func netmask(a u128, bits int, v6 bool) u128 {
	if !v6 {
		return u128{lo: a.lo &^ (uint64(1)<<(32-bits) - 1)}
	}
	if bits <= 64 {
		return u128{hi: a.hi &^ (^uint64(0) >> bits)}
	}
	return u128{hi: a.hi, lo: a.lo &^ (^uint64(0) >> (bits - 64))}
}

// broadcast sets every host bit of a after the first bits bits.
func broadcast(a u128, bits int, v6 bool) u128 {
	if !v6 {
		return u128{lo: a.lo | (uint64(1)<<(32-bits) - 1)}
	}
	if bits <= 64 {
		return u128{hi: a.hi | ^uint64(0)>>bits, lo: ^uint64(0)}
	}
	return u128{hi: a.hi, lo: a.lo | ^uint64(0)>>(bits-64)}
}

// fromAddr converts a netip address; v6 is false only for plain IPv4.
func fromAddr(a netip.Addr) (u128, bool) {
	if a.Is4() {
		b := a.As4()
		return u128{lo: uint64(binary.BigEndian.Uint32(b[:]))}, false
	}
	b := a.As16()
	return u128{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}, true
}

// packet is what the filter needs to know about one IP packet. It lives on
// the stack of Inbound/Outbound and must not escape (no allocation).
type packet struct {
	v6       bool
	frag     bool // a non-first fragment: no transport header to read
	proto    uint8
	tcpFlags uint8
	icmpType uint8
	src, dst u128
	// sport and dport are the transport ports. For ICMP echo the identifier
	// stands in: an echo request has sport=id, a reply dport=id, so a reply
	// reversed is the tuple of its request.
	sport, dport uint16
	l4           []byte // transport header onward, within the IP length
}

// hasPorts reports whether the protocol's header starts with 16-bit source
// and destination ports.
func hasPorts(proto uint8) bool {
	switch proto {
	case protoTCP, protoUDP, protoDCCP, protoSCTP, protoUDPLite:
		return true
	}
	return false
}

// isICMPProto reports whether proto is ICMP or ICMPv6 (rules ignore ports for
// both).
func isICMPProto(proto uint8) bool { return proto == protoICMP || proto == protoICMPv6 }

// icmp reports whether the packet is the ICMP of its own IP family.
func (p *packet) icmp() bool {
	return !p.v6 && p.proto == protoICMP || p.v6 && p.proto == protoICMPv6
}

// echoRequest reports whether the packet is an ICMP or ICMPv6 echo request.
func (p *packet) echoRequest() bool {
	return p.icmp() && (!p.v6 && p.icmpType == icmp4EchoRequest || p.v6 && p.icmpType == icmp6EchoRequest)
}

// echoReply reports whether the packet is an ICMP or ICMPv6 echo reply.
func (p *packet) echoReply() bool {
	return p.icmp() && (!p.v6 && p.icmpType == icmp4EchoReply || p.v6 && p.icmpType == icmp6EchoReply)
}

// icmpError reports whether the packet is an ICMP error that quotes the
// packet it is about.
func (p *packet) icmpError() bool {
	if !p.icmp() {
		return false
	}
	if p.v6 {
		switch p.icmpType {
		case icmp6Unreachable, icmp6PacketTooBig, icmp6TimeExceeded, icmp6ParamProblem:
			return true
		}
		return false
	}
	switch p.icmpType {
	case icmp4Unreachable, icmp4TimeExceeded, icmp4ParamProblem:
		return true
	}
	return false
}

// parse fills p from a raw IPv4 or IPv6 packet and reports whether it is well
// formed. Every read is bounds-checked; hostile bytes yield false, never a
// panic. embedded parses the quoted packet inside an ICMP error, which is
// truncated by design: its length fields are not held against the buffer and
// only the first 8 transport bytes are required.
func (p *packet) parse(b []byte, embedded bool) bool {
	if len(b) == 0 {
		return false
	}
	switch b[0] >> 4 {
	case 4:
		return p.parse4(b, embedded)
	case 6:
		return p.parse6(b, embedded)
	}
	return false
}

// parse4 parses an IPv4 packet (see parse).
func (p *packet) parse4(b []byte, embedded bool) bool {
	if len(b) < ipv4HeaderLen {
		return false
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < ipv4HeaderLen || ihl > len(b) {
		return false
	}
	end := len(b)
	if !embedded {
		total := int(binary.BigEndian.Uint16(b[2:4]))
		if total < ihl || total > len(b) {
			return false
		}
		end = total
	}
	p.v6 = false
	p.proto = b[9]
	p.src = u128{lo: uint64(binary.BigEndian.Uint32(b[12:16]))}
	p.dst = u128{lo: uint64(binary.BigEndian.Uint32(b[16:20]))}
	if binary.BigEndian.Uint16(b[6:8])&0x1fff != 0 {
		p.frag = true
		return true
	}
	return p.parseL4(b[ihl:end], embedded)
}

// parse6 parses an IPv6 packet, walking Hop-by-Hop, Routing, Destination
// Options, Authentication and Fragment headers (see parse).
func (p *packet) parse6(b []byte, embedded bool) bool {
	if len(b) < ipv6HeaderLen {
		return false
	}
	end := len(b)
	if !embedded {
		end = ipv6HeaderLen + int(binary.BigEndian.Uint16(b[4:6]))
		if end > len(b) {
			return false
		}
	}
	p.v6 = true
	p.src = u128{hi: binary.BigEndian.Uint64(b[8:16]), lo: binary.BigEndian.Uint64(b[16:24])}
	p.dst = u128{hi: binary.BigEndian.Uint64(b[24:32]), lo: binary.BigEndian.Uint64(b[32:40])}
	next, off, sawFrag := b[6], ipv6HeaderLen, false
	for i := 0; ; i++ {
		switch next {
		case extHopByHop, extRouting, extDestOpts, extAH, extFragment:
		case 135, 139, 140, 253, 254: // Mobility, HIP, Shim6, experiments: cannot see past them
			return false
		default:
			p.proto = next
			return p.parseL4(b[off:end], embedded)
		}
		if i >= maxExtHeaders || off+ipv6ExtHeaderMin > end {
			return false
		}
		if next == extHopByHop && i != 0 {
			return false // Hop-by-Hop is only valid right after the fixed header
		}
		h := b[off:end]
		switch next {
		case extFragment:
			if sawFrag {
				return false
			}
			sawFrag = true
			if binary.BigEndian.Uint16(h[2:4])&^7 != 0 {
				p.proto = h[0]
				p.frag = true
				return true
			}
			next, off = h[0], off+ipv6ExtHeaderMin
		case extAH:
			n := (int(h[1]) + 2) * 4
			if n > len(h) {
				return false
			}
			next, off = h[0], off+n
		default:
			n := (int(h[1]) + 1) * 8
			if n > len(h) {
				return false
			}
			next, off = h[0], off+n
		}
	}
}

// parseL4 reads the transport header: ports, TCP flags, ICMP type and echo
// identifier. Protocols without ports need nothing.
func (p *packet) parseL4(l4 []byte, embedded bool) bool {
	p.l4 = l4
	switch {
	case hasPorts(p.proto):
		need := embeddedL4MinBytes
		if !embedded {
			need = minHeader(p.proto)
		}
		if len(l4) < need {
			return false
		}
		p.sport = binary.BigEndian.Uint16(l4[0:2])
		p.dport = binary.BigEndian.Uint16(l4[2:4])
		if p.proto == protoTCP && len(l4) > 13 {
			p.tcpFlags = l4[13]
		}
	case p.icmp():
		if len(l4) < icmpHeaderLen {
			return false
		}
		p.icmpType = l4[0]
		id := binary.BigEndian.Uint16(l4[4:6])
		switch {
		case p.echoRequest():
			p.sport = id
		case p.echoReply():
			p.dport = id
		}
	}
	return true
}

// minHeader is the smallest valid header of a protocol with ports.
func minHeader(proto uint8) int {
	switch proto {
	case protoTCP:
		return 20
	case protoSCTP, protoDCCP:
		return 12
	}
	return 8 // UDP, UDP-Lite
}
