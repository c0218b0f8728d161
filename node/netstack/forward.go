package netstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// Forwarding makes the stack a userspace subnet router or exit node:
// TCP connections and UDP flows that arrive for addresses other than
// the stack's own (peers sent them here because the node serves a route
// that covers them) are terminated in the stack and dialled again from
// the host, so the destination sees the host's address. The engine's
// filter has already decided that the source may reach the destination;
// Allowed is checked again here, so that nothing beyond the routes in
// force is ever dialled.
type Forwarding struct {
	// Allowed reports whether dst is inside a route the node serves now;
	// required.
	Allowed func(dst netip.Addr) bool
	// Dial connects from the host; nil uses a net.Dialer.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// MaxTCP and MaxUDP bound the forwarded connections and flows open at
	// once; past them new ones are refused (TCP: reset). 0 means
	// DefaultMaxForwardTCP and DefaultMaxForwardUDP.
	MaxTCP, MaxUDP int
	// UDPIdle ends a UDP flow that carried nothing either way for this
	// long; 0 means DefaultUDPIdle.
	UDPIdle time.Duration
	// DialTimeout bounds connecting to a TCP destination (the source's SYN
	// waits meanwhile); 0 means DefaultForwardDialTimeout.
	DialTimeout time.Duration
	// Ping sends one ICMP echo request with payload from the host to dst
	// and returns nil once the matching reply arrived (forward_icmp.go);
	// nil uses HostPing.
	Ping func(ctx context.Context, dst netip.Addr, payload []byte) error
	// MaxICMP bounds the echo requests forwarded at once (past it they
	// are dropped); 0 means DefaultMaxForwardICMP. EchoTimeout bounds one;
	// 0 means DefaultEchoTimeout.
	MaxICMP     int
	EchoTimeout time.Duration
}

// Forwarding defaults.
const (
	DefaultMaxForwardTCP      = 4096
	DefaultMaxForwardUDP      = 1024
	DefaultUDPIdle            = 60 * time.Second
	DefaultForwardDialTimeout = 10 * time.Second
	// maxInFlightSYN bounds TCP handshakes waiting for their dial.
	maxInFlightSYN = 512
)

// neverForwarded are destinations the stack never dials for a peer,
// whatever the routes: the host's own loopback and link-local networks,
// multicast, and the mesh (which peers reach directly).
var neverForwarded = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("ff00::/8"),
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("::/128"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("fd7a:115c:a1e0::/48"),
	netip.MustParsePrefix("255.255.255.255/32"),
}

// forwarder owns the goroutines of forwarded connections.
type forwarder struct {
	cfg    Forwarding
	ctx    context.Context
	cancel context.CancelFunc
	tcp    chan struct{} // semaphore
	udp    chan struct{} // semaphore
	icmp   chan struct{} // semaphore

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// start counts a forwarding goroutine in, unless forwarding is closing.
func (f *forwarder) start() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.wg.Add(1)
	return true
}

// enableForwarding starts forwarding as cfg says (New, for
// Config.Forward); Close ends every forwarded connection.
func (s *Stack) enableForwarding(cfg Forwarding) error {
	if cfg.Allowed == nil {
		return errors.New("netstack: Forwarding.Allowed is required")
	}
	if cfg.Dial == nil {
		cfg.Dial = (&net.Dialer{}).DialContext
	}
	cfg.MaxTCP = cmpOr(cfg.MaxTCP, DefaultMaxForwardTCP)
	cfg.MaxUDP = cmpOr(cfg.MaxUDP, DefaultMaxForwardUDP)
	if cfg.UDPIdle <= 0 {
		cfg.UDPIdle = DefaultUDPIdle
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultForwardDialTimeout
	}
	if cfg.Ping == nil {
		cfg.Ping = HostPing
	}
	cfg.MaxICMP = cmpOr(cfg.MaxICMP, DefaultMaxForwardICMP)
	if cfg.EchoTimeout <= 0 {
		cfg.EchoTimeout = DefaultEchoTimeout
	}
	s.fwdMu.Lock()
	defer s.fwdMu.Unlock()
	if s.closed.Load() {
		return errClosed
	}
	if s.fwd != nil {
		return errors.New("netstack: forwarding is already on")
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &forwarder{cfg: cfg, ctx: ctx, cancel: cancel,
		tcp: make(chan struct{}, cfg.MaxTCP), udp: make(chan struct{}, cfg.MaxUDP),
		icmp: make(chan struct{}, cfg.MaxICMP)}
	// Accept packets for any address (promiscuous) and answer from it
	// (spoofing), so the stack can stand in for the destination.
	if err := s.stack.SetPromiscuousMode(nicID, true); err != nil {
		cancel()
		return fmt.Errorf("netstack: promiscuous mode: %s", err)
	}
	if err := s.stack.SetSpoofing(nicID, true); err != nil {
		cancel()
		return fmt.Errorf("netstack: spoofing: %s", err)
	}
	s.stack.SetTransportProtocolHandler(tcp.ProtocolNumber, tcp.NewForwarder(s.stack, 0, maxInFlightSYN, s.forwardTCP).HandlePacket)
	s.stack.SetTransportProtocolHandler(udp.ProtocolNumber, udp.NewForwarder(s.stack, s.forwardUDP).HandlePacket)
	s.fwd = f
	return nil
}

func cmpOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// forwardable reports whether the stack dials dst for a peer: inside a
// route in force, not one of the stack's own addresses, never the
// host's loopback, link-local, multicast or the mesh.
func (s *Stack) forwardable(f *forwarder, dst netip.Addr) bool {
	dst = dst.Unmap()
	if !dst.IsValid() || slices.Contains(s.addrs, dst) {
		return false
	}
	for _, p := range neverForwarded {
		if p.Contains(dst) {
			return false
		}
	}
	return f.cfg.Allowed(dst)
}

func addrOf(a tcpip.Address) netip.Addr {
	ip, _ := netip.AddrFromSlice(a.AsSlice())
	return ip.Unmap()
}

// forwardTCP handles a SYN for an address that is not the stack's: it
// dials the destination first, and only then completes the handshake, so
// a refused or unreachable destination is a reset at the source, as if
// it had answered directly. It runs on its own goroutine (gVisor's).
func (s *Stack) forwardTCP(r *tcp.ForwarderRequest) {
	f := s.forwarder()
	id := r.ID()
	dst := netip.AddrPortFrom(addrOf(id.LocalAddress), id.LocalPort)
	if f == nil || !s.forwardable(f, dst.Addr()) {
		r.Complete(true)
		return
	}
	if !f.start() {
		r.Complete(true)
		return
	}
	defer f.wg.Done()
	select {
	case f.tcp <- struct{}{}:
		defer func() { <-f.tcp }()
	default:
		s.log.Warn("forwarding: too many TCP connections; refusing", "dst", dst, "max", f.cfg.MaxTCP)
		r.Complete(true)
		return
	}
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.DialTimeout)
	out, err := f.cfg.Dial(ctx, "tcp", dst.String())
	cancel()
	if err != nil {
		s.log.Debug("forwarding: dial failed", "dst", dst, "err", err)
		r.Complete(true)
		return
	}
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		r.Complete(true)
		out.Close()
		return
	}
	r.Complete(false)
	ep.SocketOptions().SetKeepAlive(true)
	in := gonet.NewTCPConn(&wq, ep)
	splice(f.ctx, in, out)
}

// splice copies both ways until both directions end or ctx ends, passing
// on half-closes, then closes both.
func splice(ctx context.Context, a, b net.Conn) {
	stop := context.AfterFunc(ctx, func() { a.Close(); b.Close() })
	defer stop()
	var wg sync.WaitGroup
	wg.Add(2)
	half := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			dst.Close()
		}
	}
	go half(a, b)
	go half(b, a)
	wg.Wait()
	a.Close()
	b.Close()
}

// forwardUDP handles the first datagram of a UDP flow to an address that
// is not the stack's: it opens a host socket to the destination and
// relays datagrams both ways until the flow is idle for UDPIdle. It runs
// in the packet path, so it only sets up and starts the relay.
func (s *Stack) forwardUDP(r *udp.ForwarderRequest) {
	f := s.forwarder()
	id := r.ID()
	dst := netip.AddrPortFrom(addrOf(id.LocalAddress), id.LocalPort)
	if f == nil || !s.forwardable(f, dst.Addr()) {
		return
	}
	select {
	case f.udp <- struct{}{}:
	default:
		s.log.Warn("forwarding: too many UDP flows; dropping", "dst", dst, "max", f.cfg.MaxUDP)
		return
	}
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		<-f.udp
		return
	}
	in := gonet.NewUDPConn(&wq, ep)
	if !f.start() {
		in.Close()
		<-f.udp
		return
	}
	go func() {
		defer func() { <-f.udp; f.wg.Done() }()
		defer in.Close()
		ctx, cancel := context.WithTimeout(f.ctx, f.cfg.DialTimeout)
		out, err := f.cfg.Dial(ctx, "udp", dst.String())
		cancel()
		if err != nil {
			s.log.Debug("forwarding: udp dial failed", "dst", dst, "err", err)
			return
		}
		relayUDP(f.ctx, in, out, f.cfg.UDPIdle)
	}()
}

// relayUDP copies datagrams between in and out until neither carried
// anything for idle, or ctx ends; then it closes both.
func relayUDP(ctx context.Context, in, out net.Conn, idle time.Duration) {
	stop := context.AfterFunc(ctx, func() { in.Close(); out.Close() })
	defer stop()
	var wg sync.WaitGroup
	wg.Add(2)
	one := func(dst, src net.Conn) {
		defer wg.Done()
		defer func() { in.Close(); out.Close() }() // one side idle or gone ends the flow
		buf := make([]byte, 65535)
		for {
			_ = src.SetReadDeadline(time.Now().Add(idle))
			n, err := src.Read(buf)
			if err != nil {
				return
			}
			// Traffic either way keeps the flow: push the other side's
			// deadline too.
			_ = dst.SetReadDeadline(time.Now().Add(idle))
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
	}
	go one(out, in)
	go one(in, out)
	wg.Wait()
}

// forwarder returns the forwarding state, or nil when forwarding is off.
func (s *Stack) forwarder() *forwarder {
	s.fwdMu.Lock()
	defer s.fwdMu.Unlock()
	return s.fwd
}

// closeForwarding ends every forwarded connection and waits for their
// goroutines.
func (s *Stack) closeForwarding() {
	s.fwdMu.Lock()
	f := s.fwd
	s.fwdMu.Unlock()
	if f == nil {
		return
	}
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.cancel()
	f.wg.Wait()
}
