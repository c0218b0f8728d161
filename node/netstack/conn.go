package netstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// listenBacklog bounds connections accepted by the stack but not yet by
// the application.
const listenBacklog = 1024

// errClosed is returned (wrapped in net.ErrClosed) by Dial and Listen after
// Close.
var errClosed = fmt.Errorf("netstack: stack closed: %w", net.ErrClosed)

// DialContext connects to addr over the stack. network is "tcp", "tcp4",
// "tcp6", "udp", "udp4" or "udp6". A refused TCP connection returns an
// error wrapping syscall.ECONNREFUSED; a cancelled or expired ctx returns
// ctx.Err().
func (s *Stack) DialContext(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	fa, proto, err := remote(network, addr)
	if err != nil {
		return nil, err
	}
	switch network {
	case "tcp", "tcp4", "tcp6":
		return s.dialTCP(ctx, fa, proto)
	default:
		c, err := gonet.DialUDP(s.stack, nil, &fa, proto)
		if err != nil {
			return nil, fmt.Errorf("netstack: dial udp %s: %w", addr, err)
		}
		return c, nil
	}
}

// remote checks network against addr and converts addr for gVisor.
func remote(network string, addr netip.AddrPort) (tcpip.FullAddress, tcpip.NetworkProtocolNumber, error) {
	ip := addr.Addr().Unmap()
	var want4, want6 bool
	switch network {
	case "tcp", "udp":
		want4, want6 = true, true
	case "tcp4", "udp4":
		want4 = true
	case "tcp6", "udp6":
		want6 = true
	default:
		return tcpip.FullAddress{}, 0, fmt.Errorf("netstack: unsupported network %q; use tcp, tcp4, tcp6, udp, udp4 or udp6", network)
	}
	switch {
	case !ip.IsValid() || ip.IsUnspecified() || addr.Port() == 0:
		return tcpip.FullAddress{}, 0, fmt.Errorf("netstack: dial %s %s: need an address and a non-zero port", network, addr)
	case ip.Is4() && !want4, ip.Is6() && !want6:
		return tcpip.FullAddress{}, 0, fmt.Errorf("netstack: dial %s: address %s is of the other IP family", network, ip)
	}
	proto := ipv4.ProtocolNumber
	if ip.Is6() {
		proto = ipv6.ProtocolNumber
	}
	return tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFromSlice(ip.AsSlice()), Port: addr.Port()}, proto, nil
}

// dialTCP is gonet's dial with errors that say what happened (refused,
// unreachable, timed out) in the syscall terms callers test for.
func (s *Stack) dialTCP(ctx context.Context, fa tcpip.FullAddress, proto tcpip.NetworkProtocolNumber) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	wq := new(waiter.Queue)
	ep, terr := s.stack.NewEndpoint(tcp.ProtocolNumber, proto, wq)
	if terr != nil {
		return nil, dialError("tcp", fa, terr)
	}
	entry, ready := waiter.NewChannelEntry(waiter.WritableEvents)
	wq.EventRegister(&entry)
	defer wq.EventUnregister(&entry)
	terr = ep.Connect(fa)
	if _, ok := terr.(*tcpip.ErrConnectStarted); ok {
		select {
		case <-ctx.Done():
			ep.Close()
			return nil, ctx.Err()
		case <-ready:
		}
		terr = ep.LastError()
	}
	if terr != nil {
		ep.Close()
		return nil, dialError("tcp", fa, terr)
	}
	return gonet.NewTCPConn(wq, ep), nil
}

func dialError(network string, fa tcpip.FullAddress, err tcpip.Error) error {
	return &net.OpError{Op: "dial", Net: network, Addr: &net.TCPAddr{IP: net.IP(fa.Addr.AsSlice()), Port: int(fa.Port)}, Err: errnoOf(err)}
}

// errnoOf maps the gVisor errors a dial or listen can meet to the errno a
// kernel socket would return, so callers can use errors.Is with syscall
// constants; others keep gVisor's text.
func errnoOf(err tcpip.Error) error {
	switch err.(type) {
	case *tcpip.ErrConnectionRefused:
		return syscall.ECONNREFUSED
	case *tcpip.ErrConnectionReset:
		return syscall.ECONNRESET
	case *tcpip.ErrTimeout:
		return syscall.ETIMEDOUT
	case *tcpip.ErrHostUnreachable, *tcpip.ErrHostDown:
		return syscall.EHOSTUNREACH
	case *tcpip.ErrNetworkUnreachable, *tcpip.ErrNoNet:
		return syscall.ENETUNREACH
	case *tcpip.ErrConnectionAborted, *tcpip.ErrAborted:
		return syscall.ECONNABORTED
	case *tcpip.ErrPortInUse, *tcpip.ErrDuplicateAddress:
		return syscall.EADDRINUSE
	case *tcpip.ErrClosedForSend, *tcpip.ErrClosedForReceive, *tcpip.ErrInvalidEndpointState:
		return net.ErrClosed
	}
	return errors.New(err.String())
}

// ListenTCP listens on port on all of the stack's addresses, IPv4 and IPv6.
func (s *Stack) ListenTCP(port uint16) (net.Listener, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	wq := new(waiter.Queue)
	// An IPv6 endpoint bound to the unspecified address is dual-stack: it
	// also receives IPv4.
	ep, terr := s.stack.NewEndpoint(tcp.ProtocolNumber, ipv6.ProtocolNumber, wq)
	if terr != nil {
		return nil, fmt.Errorf("netstack: listen tcp port %d: %w", port, errnoOf(terr))
	}
	if terr := ep.Bind(tcpip.FullAddress{Port: port}); terr != nil {
		ep.Close()
		return nil, fmt.Errorf("netstack: listen tcp port %d: %w", port, errnoOf(terr))
	}
	if terr := ep.Listen(listenBacklog); terr != nil {
		ep.Close()
		return nil, fmt.Errorf("netstack: listen tcp port %d: %w", port, errnoOf(terr))
	}
	return gonet.NewTCPListener(s.stack, wq, ep), nil
}

// ListenUDP listens on port on all of the stack's addresses, IPv4 and IPv6.
func (s *Stack) ListenUDP(port uint16) (net.PacketConn, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	c, err := gonet.DialUDP(s.stack, &tcpip.FullAddress{Port: port}, nil, ipv6.ProtocolNumber)
	if err != nil {
		return nil, fmt.Errorf("netstack: listen udp port %d: %w", port, err)
	}
	return c, nil
}
