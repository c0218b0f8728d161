package netstack

import (
	"testing"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/stack/gro"
)

// countingDispatcher counts the packets GRO delivers.
type countingDispatcher struct{ n int }

func (d *countingDispatcher) DeliverNetworkPacket(tcpip.NetworkProtocolNumber, *stack.PacketBuffer) {
	d.n++
}

func (d *countingDispatcher) DeliverLinkPacket(tcpip.NetworkProtocolNumber, *stack.PacketBuffer) {}

// tcp4Packet builds an IPv4 TCP data packet from port sport.
func tcp4Packet(sport uint16, seq uint32, payload int) []byte {
	p := make([]byte, header.IPv4MinimumSize+header.TCPMinimumSize+payload)
	header.IPv4(p).Encode(&header.IPv4Fields{
		TotalLength: uint16(len(p)), TTL: 64, Protocol: uint8(header.TCPProtocolNumber),
		SrcAddr: tcpip.AddrFrom4(addrA4.As4()), DstAddr: tcpip.AddrFrom4(addrB4.As4()),
	})
	header.TCP(p[header.IPv4MinimumSize:]).Encode(&header.TCPFields{
		SrcPort: sport, DstPort: 80, SeqNum: seq, AckNum: 1,
		DataOffset: header.TCPMinimumSize, Flags: header.TCPFlagAck, WindowSize: 1000,
	})
	return p
}

// TestFlushGROEmptiesBuckets pins down why flushGRO exists: gVisor's
// GRO.Flush leaves all but one packet of a bucket behind, and flushGRO
// delivers them all.
func TestFlushGROEmptiesBuckets(t *testing.T) {
	for _, tt := range []struct {
		name  string
		flush func(*gro.GRO)
		want  int
	}{
		{"gro.Flush", (*gro.GRO).Flush, 1},
		{"flushGRO", flushGRO, groBucketSize},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var d countingDispatcher
			var g gro.GRO
			g.Init(true)
			g.Dispatcher = &d
			// Flows whose source ports differ by a multiple of 8 share a
			// bucket (the bucket hash sums addresses and ports).
			for i := range groBucketSize {
				pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
					Payload: buffer.MakeWithData(tcp4Packet(uint16(1000+8*i), 1, 100)),
				})
				pkt.NetworkProtocolNumber = header.IPv4ProtocolNumber
				pkt.RXChecksumValidated = true
				g.Enqueue(pkt)
				pkt.DecRef()
			}
			tt.flush(&g)
			if d.n != tt.want {
				t.Errorf("delivered %d packets, want %d (if gro.Flush now delivers all, gVisor fixed it and flushGRO can call it once)", d.n, tt.want)
			}
			flushGRO(&g) // release what is left
		})
	}
}
