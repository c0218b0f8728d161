package netstack

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"net/netip"
	"slices"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// ICMP echo forwarding: an echo request a peer sends to an address behind
// the router is taken out of the batch before the stack sees it (in
// promiscuous mode gVisor would answer it itself, claiming every host is
// up), the host pings the destination, and only a real reply comes back
// to the peer, from the destination's address, with the peer's own
// identifier and sequence number. Requests to addresses the router must
// not reach are dropped unanswered, as other traffic is.

// Forwarding defaults for ICMP echo.
const (
	DefaultMaxForwardICMP = 64
	DefaultEchoTimeout    = 5 * time.Second
)

// echoRequest is one ICMP echo request from a peer.
type echoRequest struct {
	src, dst netip.Addr
	id, seq  uint16
	payload  []byte
}

// takeEchoes removes from bufs the echo requests for addresses other than
// the stack's own and hands them to the forwarder; it returns the packets
// left for the stack. bufs is returned unchanged (no copy) when it holds
// none, the common case.
func (s *Stack) takeEchoes(bufs [][]byte, offset int) [][]byte {
	first := -1
	for i, b := range bufs {
		if offset <= len(b) && isICMP(b[offset:]) {
			first = i
			break
		}
	}
	if first < 0 {
		return bufs
	}
	f := s.forwarder()
	if f == nil {
		return bufs
	}
	rest := slices.Clone(bufs[:first])
	for _, b := range bufs[first:] {
		if offset > len(b) {
			rest = append(rest, b)
			continue
		}
		req, ok := parseEcho(b[offset:])
		if !ok || slices.Contains(s.addrs, req.dst) {
			rest = append(rest, b) // not an echo request, or for the stack itself
			continue
		}
		s.forwardEcho(f, req)
	}
	return rest
}

// isICMP is a cheap first look: an IPv4 packet carrying ICMP or an IPv6
// packet whose first header is ICMPv6.
func isICMP(p []byte) bool {
	switch {
	case len(p) >= header.IPv4MinimumSize && p[0]>>4 == 4:
		return p[9] == uint8(header.ICMPv4ProtocolNumber)
	case len(p) >= header.IPv6MinimumSize && p[0]>>4 == 6:
		return p[6] == uint8(header.ICMPv6ProtocolNumber)
	}
	return false
}

// parseEcho reads an unfragmented ICMP echo request with a good
// checksum. The payload is copied: WireGuard reuses p.
func parseEcho(p []byte) (echoRequest, bool) {
	var req echoRequest
	var msg []byte
	if !isICMP(p) {
		return req, false
	}
	switch p[0] >> 4 {
	case 4:
		ip := header.IPv4(p)
		hl, total := int(ip.HeaderLength()), int(ip.TotalLength())
		if hl < header.IPv4MinimumSize || total < hl || total > len(p) || ip.More() || ip.FragmentOffset() != 0 ||
			ip.Protocol() != uint8(header.ICMPv4ProtocolNumber) {
			return req, false
		}
		msg = p[hl:total]
		if len(msg) < header.ICMPv4MinimumSize || msg[0] != uint8(header.ICMPv4Echo) || msg[1] != 0 {
			return req, false
		}
		if checksum.Checksum(msg, 0) != 0xffff {
			return req, false
		}
		req.src = netip.AddrFrom4([4]byte(p[12:16]))
		req.dst = netip.AddrFrom4([4]byte(p[16:20]))
	case 6:
		total := header.IPv6MinimumSize + int(binary.BigEndian.Uint16(p[4:6]))
		if total > len(p) || p[6] != uint8(header.ICMPv6ProtocolNumber) {
			return req, false
		}
		msg = p[header.IPv6MinimumSize:total]
		if len(msg) < header.ICMPv6EchoMinimumSize || msg[0] != uint8(header.ICMPv6EchoRequest) || msg[1] != 0 {
			return req, false
		}
		req.src = netip.AddrFrom16([16]byte(p[8:24]))
		req.dst = netip.AddrFrom16([16]byte(p[24:40]))
		if icmpv6Checksum(msg, tcpip.AddrFrom16(req.src.As16()), tcpip.AddrFrom16(req.dst.As16())) != header.ICMPv6(msg).Checksum() {
			return req, false
		}
	default:
		return req, false
	}
	req.id = binary.BigEndian.Uint16(msg[4:6])
	req.seq = binary.BigEndian.Uint16(msg[6:8])
	req.payload = slices.Clone(msg[8:])
	return req, true
}

// forwardEcho pings req.dst from the host, on its own goroutine, and
// answers the peer if the destination answered. Requests past the bound
// in flight, and to destinations the stack does not forward to, are
// dropped.
func (s *Stack) forwardEcho(f *forwarder, req echoRequest) {
	if !s.forwardable(f, req.dst) {
		return
	}
	select {
	case f.icmp <- struct{}{}:
	default:
		s.log.Debug("forwarding: too many ICMP echo requests in flight; dropping", "dst", req.dst)
		return
	}
	if !f.start() {
		<-f.icmp
		return
	}
	go func() {
		defer f.wg.Done()
		defer func() { <-f.icmp }()
		ctx, cancel := context.WithTimeout(f.ctx, f.cfg.EchoTimeout)
		err := f.cfg.Ping(ctx, req.dst, req.payload)
		cancel()
		if err != nil {
			s.log.Debug("forwarding: ping failed", "dst", req.dst, "err", err)
			return
		}
		s.sendEchoReply(req)
	}()
}

// sendEchoReply sends the peer the reply req's destination gave.
func (s *Stack) sendEchoReply(req echoRequest) {
	pkt, proto := buildEcho(false, req.dst, req.src, req.id, req.seq, req.payload)
	if err := s.stack.WriteRawPacket(nicID, proto, buffer.MakeWithData(pkt)); err != nil {
		s.log.Debug("forwarding: echo reply not sent", "dst", req.src, "err", err)
	}
}

// buildEcho builds an ICMP echo request or reply packet from src to dst.
func buildEcho(request bool, src, dst netip.Addr, id, seq uint16, payload []byte) ([]byte, tcpip.NetworkProtocolNumber) {
	if src.Is4() {
		pkt := make([]byte, header.IPv4MinimumSize+header.ICMPv4MinimumSize+len(payload))
		ip := header.IPv4(pkt)
		ip.Encode(&header.IPv4Fields{
			TotalLength: uint16(len(pkt)),
			TTL:         64,
			Protocol:    uint8(header.ICMPv4ProtocolNumber),
			SrcAddr:     tcpip.AddrFrom4(src.As4()),
			DstAddr:     tcpip.AddrFrom4(dst.As4()),
		})
		ip.SetChecksum(^ip.CalculateChecksum())
		msg := header.ICMPv4(pkt[header.IPv4MinimumSize:])
		msg.SetType(header.ICMPv4EchoReply)
		if request {
			msg.SetType(header.ICMPv4Echo)
		}
		msg.SetIdent(id)
		msg.SetSequence(seq)
		copy(msg.Payload(), payload)
		msg.SetChecksum(header.ICMPv4Checksum(msg[:header.ICMPv4MinimumSize], checksum.Checksum(payload, 0)))
		return pkt, header.IPv4ProtocolNumber
	}
	pkt := make([]byte, header.IPv6MinimumSize+header.ICMPv6EchoMinimumSize+len(payload))
	s, d := tcpip.AddrFrom16(src.As16()), tcpip.AddrFrom16(dst.As16())
	header.IPv6(pkt).Encode(&header.IPv6Fields{
		PayloadLength:     uint16(header.ICMPv6EchoMinimumSize + len(payload)),
		TransportProtocol: header.ICMPv6ProtocolNumber,
		HopLimit:          64,
		SrcAddr:           s,
		DstAddr:           d,
	})
	msg := header.ICMPv6(pkt[header.IPv6MinimumSize:])
	msg.SetType(header.ICMPv6EchoReply)
	if request {
		msg.SetType(header.ICMPv6EchoRequest)
	}
	msg.SetIdent(id)
	msg.SetSequence(seq)
	copy(msg.Payload(), payload)
	msg.SetChecksum(icmpv6Checksum(msg, s, d))
	return pkt, header.IPv6ProtocolNumber
}

// icmpv6Checksum is the checksum msg (an echo message) must carry.
func icmpv6Checksum(msg header.ICMPv6, src, dst tcpip.Address) uint16 {
	payload := msg[header.ICMPv6EchoMinimumSize:]
	return header.ICMPv6Checksum(header.ICMPv6ChecksumParams{
		Header:      msg[:header.ICMPv6EchoMinimumSize],
		Src:         src,
		Dst:         dst,
		PayloadCsum: checksum.Checksum(payload, 0),
		PayloadLen:  len(payload),
	})
}

// randUint16 is a random ICMP identifier or sequence number.
func randUint16() uint16 {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint16(b[:])
}
