package netstack

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// HostPing sends one ICMP echo request with payload from the host to dst
// and waits for the matching reply until ctx ends. It uses an
// unprivileged ICMP socket where the OS allows one (Linux:
// net.ipv4.ping_group_range; macOS), and a raw socket otherwise (root or
// CAP_NET_RAW). It is the default Forwarding.Ping.
func HostPing(ctx context.Context, dst netip.Addr, payload []byte) error {
	dst = dst.Unmap()
	network, raw, proto := "udp4", "ip4:icmp", 1
	var typ, reply icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if dst.Is6() {
		network, raw, proto = "udp6", "ip6:ipv6-icmp", 58
		typ, reply = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	var to net.Addr = &net.UDPAddr{IP: dst.AsSlice()}
	unprivileged := true
	c, err := icmp.ListenPacket(network, "")
	if err != nil {
		unprivileged = false
		to = &net.IPAddr{IP: dst.AsSlice()}
		var rerr error
		if c, rerr = icmp.ListenPacket(raw, ""); rerr != nil {
			return fmt.Errorf("ping %s: no ICMP socket (unprivileged: %v; raw: %w)", dst, err, rerr)
		}
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Now()) })
	defer stop()
	id, seq := randUint16(), randUint16()
	msg, err := (&icmp.Message{Type: typ, Body: &icmp.Echo{ID: int(id), Seq: int(seq), Data: payload}}).Marshal(nil)
	if err != nil {
		return fmt.Errorf("ping %s: %w", dst, err)
	}
	if _, err := c.WriteTo(msg, to); err != nil {
		return fmt.Errorf("ping %s: %w", dst, err)
	}
	buf := make([]byte, 1500+len(payload))
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("ping %s: %w", dst, ctx.Err())
			}
			return fmt.Errorf("ping %s: %w", dst, err)
		}
		if !sameHost(from, dst) {
			continue
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil || m.Type != reply {
			continue
		}
		echo, ok := m.Body.(*icmp.Echo)
		// An unprivileged socket's identifier is the kernel's, not ours.
		if !ok || echo.Seq != int(seq) || (!unprivileged && echo.ID != int(id)) || !bytes.Equal(echo.Data, payload) {
			continue
		}
		return nil
	}
}

func sameHost(from net.Addr, dst netip.Addr) bool {
	var ip net.IP
	switch a := from.(type) {
	case *net.UDPAddr:
		ip = a.IP
	case *net.IPAddr:
		ip = a.IP
	default:
		return false
	}
	got, ok := netip.AddrFromSlice(ip)
	return ok && got.Unmap() == dst
}
