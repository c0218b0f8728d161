package netstack

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// FuzzWrite feeds arbitrary bytes to Write, as a hostile or broken peer
// could through WireGuard, alone and in a batch with a second packet (so
// GRO sees pairs). The stack must not panic; whatever it answers is read
// and discarded.
func FuzzWrite(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	s, err := New(Config{Addresses: []netip.Addr{addrB4, addrB6}})
	if err != nil {
		f.Fatal(err)
	}
	ln, err := s.ListenTCP(80)
	if err != nil {
		f.Fatal(err)
	}
	pc, err := s.ListenUDP(53)
	if err != nil {
		f.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // drain replies (RSTs, ICMP errors, echo replies)
		defer wg.Done()
		bufs, sizes := [][]byte{make([]byte, 65535)}, []int{0}
		for {
			if _, err := s.Read(bufs, sizes, 0); err != nil {
				return
			}
		}
	}()
	f.Cleanup(func() {
		ln.Close()
		pc.Close()
		s.Close()
		wg.Wait()
	})
	f.Fuzz(func(t *testing.T, p []byte) {
		const offset = 16
		buf := append(make([]byte, offset), p...)
		if _, err := s.Write([][]byte{buf}, offset); err != nil {
			t.Fatal(err)
		}
		half := append(make([]byte, offset), p[:len(p)/2]...)
		if _, err := s.Write([][]byte{buf, half, buf}, offset); err != nil {
			t.Fatal(err)
		}
		// An offset past the end of a buffer is a caller bug, not a panic.
		if _, err := s.Write([][]byte{p}, len(p)+1); err != nil {
			t.Fatal(err)
		}
	})
}

// fuzzSeeds are packets to the fuzzed stack: valid ones of each protocol
// it handles, and broken ones.
func fuzzSeeds() [][]byte {
	syn4 := tcp4Packet(1234, 1, 0)
	tcp := header.TCP(syn4[header.IPv4MinimumSize:])
	tcp.SetFlags(uint8(header.TCPFlagSyn))
	data4 := tcp4Packet(1234, 2, 100)

	udp4 := make([]byte, header.IPv4MinimumSize+header.UDPMinimumSize+4)
	header.IPv4(udp4).Encode(&header.IPv4Fields{
		TotalLength: uint16(len(udp4)), TTL: 64, Protocol: uint8(header.UDPProtocolNumber),
		SrcAddr: tcpip.AddrFrom4(addrA4.As4()), DstAddr: tcpip.AddrFrom4(addrB4.As4()),
	})
	header.UDP(udp4[header.IPv4MinimumSize:]).Encode(&header.UDPFields{SrcPort: 999, DstPort: 53, Length: header.UDPMinimumSize + 4})

	echo4 := make([]byte, header.IPv4MinimumSize+header.ICMPv4MinimumSize)
	header.IPv4(echo4).Encode(&header.IPv4Fields{
		TotalLength: uint16(len(echo4)), TTL: 64, Protocol: uint8(header.ICMPv4ProtocolNumber),
		SrcAddr: tcpip.AddrFrom4(addrA4.As4()), DstAddr: tcpip.AddrFrom4(addrB4.As4()),
	})
	header.IPv4(echo4).SetChecksum(^header.IPv4(echo4).CalculateChecksum())
	header.ICMPv4(echo4[header.IPv4MinimumSize:]).SetType(header.ICMPv4Echo)

	// IPv6 TCP behind a hop-by-hop options header (8 bytes: next header
	// TCP, length 0, PadN).
	tcp6 := make([]byte, header.IPv6MinimumSize+8+header.TCPMinimumSize+10)
	header.IPv6(tcp6).Encode(&header.IPv6Fields{
		PayloadLength:     uint16(len(tcp6) - header.IPv6MinimumSize),
		TransportProtocol: tcpip.TransportProtocolNumber(header.IPv6HopByHopOptionsExtHdrIdentifier),
		HopLimit:          64,
		SrcAddr:           tcpip.AddrFrom16(addrA6.As16()),
		DstAddr:           tcpip.AddrFrom16(addrB6.As16()),
	})
	copy(tcp6[header.IPv6MinimumSize:], []byte{uint8(header.TCPProtocolNumber), 0, 1, 4, 0, 0, 0, 0})
	header.TCP(tcp6[header.IPv6MinimumSize+8:]).Encode(&header.TCPFields{
		SrcPort: 1234, DstPort: 80, SeqNum: 1, DataOffset: header.TCPMinimumSize, Flags: header.TCPFlagSyn, WindowSize: 1000,
	})

	badLen := append([]byte(nil), data4...)
	binary.BigEndian.PutUint16(badLen[2:], 65535) // total length beyond the packet

	return [][]byte{
		syn4, data4, udp4, echo4, tcp6, badLen,
		data4[:header.IPv4MinimumSize+5],   // truncated TCP header
		tcp6[:header.IPv6MinimumSize+3],    // truncated extension header
		{0x45}, {0x60, 0, 0}, {0x50, 1, 2}, // truncated, version 5
		{},
	}
}
