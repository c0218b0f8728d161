package netstack

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// pingPayloadLen is the size of the random payload that identifies our
// echo reply.
const pingPayloadLen = 16

// Ping sends one ICMP echo request to addr and waits for the reply until
// ctx ends; it returns the round-trip time. The stack answers echo requests
// to its own addresses by itself.
func (s *Stack) Ping(ctx context.Context, addr netip.Addr) (time.Duration, error) {
	if s.closed.Load() {
		return 0, errClosed
	}
	addr = addr.Unmap()
	if !addr.IsValid() || addr.IsUnspecified() {
		return 0, fmt.Errorf("netstack: ping %s: need an address", addr)
	}
	transProto, netProto := icmp.ProtocolNumber4, ipv4.ProtocolNumber
	echo, reply := uint8(header.ICMPv4Echo), uint8(header.ICMPv4EchoReply)
	if addr.Is6() {
		transProto, netProto = icmp.ProtocolNumber6, ipv6.ProtocolNumber
		echo, reply = uint8(header.ICMPv6EchoRequest), uint8(header.ICMPv6EchoReply)
	}
	wq := new(waiter.Queue)
	ep, terr := s.stack.NewEndpoint(transProto, netProto, wq)
	if terr != nil {
		return 0, fmt.Errorf("netstack: ping %s: %w", addr, errnoOf(terr))
	}
	defer ep.Close()
	if terr := ep.Connect(tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFromSlice(addr.AsSlice())}); terr != nil {
		return 0, fmt.Errorf("netstack: ping %s: %w", addr, errnoOf(terr))
	}
	entry, readable := waiter.NewChannelEntry(waiter.ReadableEvents)
	wq.EventRegister(&entry)
	defer wq.EventUnregister(&entry)

	// Type, code, checksum, ident (the stack fills in ident and checksum),
	// sequence 1, then the payload.
	req := make([]byte, 8+pingPayloadLen)
	req[0] = echo
	req[7] = 1
	payload := req[8:]
	rand.Read(payload)
	start := time.Now()
	var r bytes.Reader
	r.Reset(req)
	if _, terr := ep.Write(&r, tcpip.WriteOptions{}); terr != nil {
		return 0, fmt.Errorf("netstack: ping %s: send: %w", addr, errnoOf(terr))
	}
	var got bytes.Buffer
	for {
		got.Reset()
		_, terr := ep.Read(&got, tcpip.ReadOptions{})
		if _, ok := terr.(*tcpip.ErrWouldBlock); ok {
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-readable:
				continue
			}
		}
		if terr != nil {
			return 0, fmt.Errorf("netstack: ping %s: receive: %w", addr, errnoOf(terr))
		}
		b := got.Bytes()
		if len(b) >= 8 && b[0] == reply && bytes.Equal(b[8:], payload) {
			return time.Since(start), nil
		}
		if len(b) == 0 {
			return 0, errors.New("netstack: ping: empty reply")
		}
	}
}
