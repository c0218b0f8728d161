package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Ping sends one ICMP echo request to a mesh address with the host stack
// and returns the round-trip time when the reply comes, or ctx's error. It
// uses a raw ICMP socket bound to the node's mesh address of the family
// (kernel TUN mode runs as root, so it may), and recognises the reply by
// its random identifier and payload.
func (d *kernelDevice) Ping(ctx context.Context, addr netip.Addr) (time.Duration, error) {
	addr = addr.Unmap()
	if !isMeshAddr(addr) {
		return 0, fmt.Errorf("engine: ping %s: not a mesh address", addr)
	}
	var src netip.Addr
	for _, a := range d.addrs {
		if a.Is4() == addr.Is4() {
			src = a
			break
		}
	}
	if !src.IsValid() {
		return 0, fmt.Errorf("engine: ping %s: this node has no mesh address of that family", addr)
	}
	network, echo, reply := "ip4:icmp", byte(8), byte(0)
	if addr.Is6() {
		network, echo, reply = "ip6:ipv6-icmp", 128, 129
	}
	c, err := net.ListenPacket(network, src.String())
	if err != nil {
		return 0, fmt.Errorf("engine: ping %s: open ICMP socket: %w", addr, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	// Type, code, checksum, identifier, sequence 1, payload. The kernel
	// fills in the ICMPv6 checksum itself.
	req := make([]byte, 8+16)
	req[0] = echo
	rand.Read(req[4:6])
	req[7] = 1
	rand.Read(req[8:])
	if addr.Is4() {
		binary.BigEndian.PutUint16(req[2:], icmpChecksum(req))
	}
	start := time.Now()
	if _, err := c.WriteTo(req, &net.IPAddr{IP: addr.AsSlice()}); err != nil {
		return 0, fmt.Errorf("engine: ping %s: send: %w", addr, err)
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, fmt.Errorf("engine: ping %s: receive: %w", addr, err)
		}
		ip, ok := from.(*net.IPAddr)
		if !ok || !ip.IP.Equal(addr.AsSlice()) || n != len(req) || buf[0] != reply {
			continue
		}
		if bytes.Equal(buf[4:n], req[4:]) {
			return time.Since(start), nil
		}
	}
}

// icmpChecksum is the Internet checksum (RFC 1071) of b, whose checksum
// field is zero.
func icmpChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
