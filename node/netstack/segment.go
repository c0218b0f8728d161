package netstack

import (
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// Outbound TCP segmentation (what a NIC's TSO does). The link endpoint
// offers "host" GSO, so gVisor's TCP hands it segments of up to gsoMaxSize
// bytes with a partial checksum (pseudo-header only), and this file cuts
// each into MSS-sized IP packets, written straight into WireGuard's
// buffers: headers copied and fixed up, payload copied once, checksums
// completed. Compared with gVisor cutting them itself (its "gVisor GSO"),
// this saves a packet buffer, an IP header build and a queue entry per
// packet: through WireGuard on loopback the median went from 156 to 187
// MB/s (146 with no segmentation offload at all).

// segmentCount returns how many packets pkt becomes.
func segmentCount(pkt *stack.PacketBuffer) int {
	if !isTCPGSO(pkt) {
		return 1
	}
	payload, mss := pkt.Data().Size(), int(pkt.GSOOptions.MSS)
	if payload <= mss || mss == 0 {
		return 1
	}
	return (payload + mss - 1) / mss
}

func isTCPGSO(pkt *stack.PacketBuffer) bool {
	t := pkt.GSOOptions.Type
	return t == stack.GSOTCPv4 || t == stack.GSOTCPv6
}

// writeSegment writes packet number seg (0-based, < segmentCount) of pkt
// into dst and returns its length, or -1 if it does not fit in dst or pkt
// is not a TCP packet we can cut (which the stack never produces).
func writeSegment(dst []byte, pkt *stack.PacketBuffer, seg int) int {
	if !isTCPGSO(pkt) {
		return copyPacket(dst, pkt)
	}
	netHdr := pkt.NetworkHeader().Slice()
	tcpHdr := pkt.TransportHeader().Slice()
	if len(tcpHdr) < header.TCPMinimumSize {
		return -1
	}
	payload := pkt.Data().Size()
	mss := int(pkt.GSOOptions.MSS)
	if mss == 0 {
		mss = payload
	}
	start := seg * mss
	n := min(mss, payload-start)
	if n < 0 {
		return -1
	}
	hlen := len(netHdr) + len(tcpHdr)
	size := hlen + n
	if size > len(dst) {
		return -1
	}
	dst = dst[:size]
	copy(dst, netHdr)
	copy(dst[len(netHdr):], tcpHdr)
	views, off := pkt.AsViewList()
	// The payload follows the headers in the packet's storage.
	copyRange(dst[hlen:], views, off+pkt.HeaderSize()+start)

	tcp := header.TCP(dst[len(netHdr):])
	last := start+n >= payload
	fixTCP(tcp, seg, mss, last)
	tcpLen := uint16(size - len(netHdr))
	var xsum uint16
	switch pkt.GSOOptions.Type {
	case stack.GSOTCPv4:
		ip := header.IPv4(dst)
		if len(netHdr) < header.IPv4MinimumSize {
			return -1
		}
		ip.SetTotalLength(uint16(size))
		ip.SetID(ip.ID() + uint16(seg))
		ip.SetChecksum(0)
		ip.SetChecksum(^ip.CalculateChecksum())
		xsum = header.PseudoHeaderChecksum(header.TCPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), tcpLen)
	case stack.GSOTCPv6:
		ip := header.IPv6(dst)
		if len(netHdr) < header.IPv6MinimumSize {
			return -1
		}
		ip.SetPayloadLength(uint16(size - header.IPv6MinimumSize))
		xsum = header.PseudoHeaderChecksum(header.TCPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), tcpLen)
	}
	tcp.SetChecksum(0)
	tcp.SetChecksum(^checksum.Checksum(tcp, xsum))
	return size
}

// fixTCP adjusts the copied TCP header for packet seg of a segment: the
// sequence number advances by the payload before it, CWR stays on the
// first packet only, and FIN and PSH on the last only (as Linux's TSO).
func fixTCP(tcp header.TCP, seg, mss int, last bool) {
	tcp.SetSequenceNumber(tcp.SequenceNumber() + uint32(seg*mss))
	flags := tcp.Flags()
	if seg > 0 {
		flags &^= header.TCPFlagCwr
	}
	if !last {
		flags &^= header.TCPFlagFin | header.TCPFlagPsh
	}
	tcp.SetFlags(uint8(flags))
}

// copyRange fills dst from views, starting at byte off of their
// concatenation.
func copyRange(dst []byte, views buffer.ViewList, off int) {
	n := 0
	for v := views.Front(); v != nil && n < len(dst); v = v.Next() {
		b := v.AsSlice()
		if off >= len(b) {
			off -= len(b)
			continue
		}
		n += copy(dst[n:], b[off:])
		off = 0
	}
}
