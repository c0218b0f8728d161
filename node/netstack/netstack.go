// Package netstack is the node's userspace TCP/IP stack: gVisor's netstack
// on one virtual NIC whose packets WireGuard reads and writes through the
// tun.Device interface, plus Dial and Listen for local code (the proxies,
// `warren forward`, inbound forwarding) to use the mesh without a kernel
// TUN device or privileges.
//
// The glue is built for throughput: WireGuard drains the stack's outbound
// queue in batches (so it can encrypt and send many packets per syscall,
// with UDP GSO), each packet is copied once, and inbound TCP segments are
// coalesced before the stack processes them.
//
// It must never route or forward on its own: it answers only for its own
// addresses, and everything it sends goes to WireGuard, unless the node
// serves subnet routes (EnableForwarding, forward.go); then it stands in
// for destinations inside those routes and dials them from the host (TCP,
// UDP; ICMP echo is answered only when the host's own ping is,
// forward_icmp.go), and never for the host's loopback, link-local or
// multicast networks or the mesh. It holds no keys and applies no policy (the engine's filter sits
// in front of it).
package netstack

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"

	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

const (
	// nicID is the stack's only NIC.
	nicID tcpip.NICID = 1

	// DefaultMTU is used when Config.MTU is zero.
	DefaultMTU = 1280

	// batchSize is the most packets WireGuard takes per Read. wireguard-go
	// uses the larger of this and its UDP batch (128 on Linux) for its
	// buffers, so 128 changes nothing there and lets platforms with
	// unbatched UDP still drain the stack 128 packets (~160 KB) a wakeup.
	// Measured batches average ~100 packets under load.
	batchSize = 128

	// queueLen bounds the outbound queue in entries; with segmentation
	// offload (segment.go) an entry is up to 64 KB of TCP. A full queue
	// makes the stack wait (see linkEndpoint), so this bounds latency, not
	// loss: 256, 1024 and 4096 measured the same throughput, and 256 keeps
	// what can wait in the queue, at worst, to ~16 MB.
	queueLen = 256

	// gsoMaxSize is the largest TCP segment the stack hands to the link
	// endpoint to cut into MTU-sized packets: 64 KB less room for headers,
	// so that the IPv4 total length of the uncut segment still fits its
	// 16 bits (gVisor refuses it otherwise).
	gsoMaxSize = 65535 - header.IPv4MaximumHeaderSize - header.TCPHeaderMaximumSize

	// TCP buffer sizes: see configureTCP.
	tcpBufferDefault = 1 << 20
	tcpBufferMax     = 8 << 20
)

// Config configures a Stack.
type Config struct {
	// Addresses are the node's own addresses (its mesh addresses); at
	// least one is required.
	Addresses []netip.Addr
	// MTU of the virtual NIC; DefaultMTU when zero. It must leave room for
	// WireGuard's overhead on the path.
	MTU int
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// Forward, when set, makes the stack a userspace subnet router (see
	// Forwarding). Such a stack does not loop traffic to its own
	// addresses back to itself: a router's own programs reach it on its
	// mesh address through the host, not through the stack.
	Forward *Forwarding
}

// Stack is a userspace TCP/IP stack. It implements tun.Device for
// WireGuard, and offers Dial and Listen to local code.
type Stack struct {
	stack  *stack.Stack
	link   *linkEndpoint
	log    *slog.Logger
	mtu    int
	events chan tun.Event

	closed    atomic.Bool
	closeOnce sync.Once

	addrs []netip.Addr // the stack's own addresses

	fwdMu sync.Mutex
	fwd   *forwarder // nil: not forwarding (see EnableForwarding)
}

var _ tun.Device = (*Stack)(nil)

// New starts a stack answering for cfg.Addresses.
func New(cfg Config) (*Stack, error) {
	if len(cfg.Addresses) == 0 {
		return nil, errors.New("netstack: at least one address required")
	}
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	minMTU := 576 // what every IPv4 host must accept
	for _, a := range cfg.Addresses {
		if a.Unmap().Is6() {
			minMTU = header.IPv6MinimumMTU
		}
	}
	if cfg.MTU < minMTU || cfg.MTU > 65535 {
		return nil, fmt.Errorf("netstack: MTU %d out of range; use %d to 65535 (IPv6 needs at least %d)",
			cfg.MTU, minMTU, header.IPv6MinimumMTU)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	st := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6},
		// Traffic to the node's own addresses loops inside the stack,
		// except on a router, which must accept packets from any source
		// for any destination (gVisor would take a forwarded packet's
		// source for one of its own, and drop it).
		HandleLocal: cfg.Forward == nil,
	})
	s := &Stack{
		stack:  st,
		link:   newLinkEndpoint(uint32(cfg.MTU), queueLen),
		log:    cfg.Logger,
		mtu:    cfg.MTU,
		events: make(chan tun.Event, 1),
	}
	if err := s.setup(cfg.Addresses); err != nil {
		s.Close()
		return nil, err
	}
	if cfg.Forward != nil {
		if err := s.enableForwarding(*cfg.Forward); err != nil {
			s.Close()
			return nil, err
		}
	}
	s.events <- tun.EventUp
	return s, nil
}

func (s *Stack) setup(addrs []netip.Addr) error {
	if err := configureTCP(s.stack); err != nil {
		return err
	}
	if err := s.stack.CreateNIC(nicID, s.link); err != nil {
		return fmt.Errorf("netstack: create NIC: %s", err)
	}
	var has4, has6 bool
	for _, a := range addrs {
		if !a.IsValid() {
			return errors.New("netstack: invalid (zero) address in Config.Addresses")
		}
		a = a.Unmap()
		proto := ipv4.ProtocolNumber
		if a.Is6() {
			proto = ipv6.ProtocolNumber
			has6 = true
		} else {
			has4 = true
		}
		s.addrs = append(s.addrs, a)
		pa := tcpip.ProtocolAddress{Protocol: proto, AddressWithPrefix: tcpip.AddrFromSlice(a.AsSlice()).WithPrefix()}
		if err := s.stack.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); err != nil {
			return fmt.Errorf("netstack: add address %s: %s", a, err)
		}
	}
	// Everything not local goes to WireGuard, which routes by peer.
	if has4 {
		s.stack.AddRoute(tcpip.Route{Destination: header.IPv4EmptySubnet, NIC: nicID})
	}
	if has6 {
		s.stack.AddRoute(tcpip.Route{Destination: header.IPv6EmptySubnet, NIC: nicID})
	}
	return nil
}

// configureTCP sets the stack-wide TCP options; the reason for each is
// beside it. Buffer sizes could not be told apart on loopback (1, 2 and
// 4 MB defaults measured the same, since the round trip is tiny); they are
// chosen for real paths.
func configureTCP(st *stack.Stack) error {
	opts := []tcpip.SettableTransportProtocolOption{
		// SACK (off by default in gVisor) lets the sender repair several
		// losses per round trip instead of one, or a retransmission
		// timeout.
		ptr(tcpip.TCPSACKEnabled(true)),
		// Send buffer: what a connection may have unacknowledged. gVisor
		// grows it from the default with the congestion window, up to the
		// maximum; 8 MB covers 1 Gbit/s at 60 ms round trip. The 1 MB
		// start keeps the many idle connections a proxy holds small.
		&tcpip.TCPSendBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: tcpBufferDefault, Max: tcpBufferMax},
		// Receive buffer: the same sizes and reasons, grown by the
		// auto-tuning below.
		&tcpip.TCPReceiveBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: tcpBufferDefault, Max: tcpBufferMax},
		// Receive buffer auto-tuning (as Linux's moderate_rcvbuf): the
		// window follows what the application drains per round trip. It
		// also makes gVisor pick the window scale from the maximum buffer,
		// not the default, so the window can grow past 2 MB at all.
		ptr(tcpip.TCPModerateReceiveBufferOption(true)),
	}
	for _, o := range opts {
		if err := st.SetTransportProtocolOption(tcp.ProtocolNumber, o); err != nil {
			return fmt.Errorf("netstack: set TCP option %T: %s", o, err)
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// Close stops the stack: connections and listeners are aborted, WireGuard's
// Read returns os.ErrClosed, and every goroutine the stack started ends
// before Close returns. It is safe to call more than once.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.closeForwarding()
		s.link.close()
		s.stack.Close()
		s.stack.Wait()
		close(s.events)
		s.log.Debug("netstack closed",
			"outbound_stalls", s.link.stalls.Load(),
			"outbound_too_big", s.link.tooBig.Load(),
			"inbound_malformed", s.link.malformed.Load())
	})
	return nil
}

// File implements tun.Device: there is no file.
func (s *Stack) File() *os.File { return nil }

// Read implements tun.Device: it blocks until the stack has sent at least
// one packet, then returns every queued packet up to len(bufs), each copied
// to bufs[i][offset:] (large TCP segments cut into MTU-sized packets).
func (s *Stack) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	return s.link.read(bufs, sizes, offset)
}

// Write implements tun.Device: it delivers packets (each bufs[i][offset:]
// one IPv4 or IPv6 packet) to the stack. Malformed packets are dropped;
// Write reports all of bufs as written so one bad packet does not cost its
// batch.
func (s *Stack) Write(bufs [][]byte, offset int) (int, error) {
	if s.closed.Load() {
		return 0, os.ErrClosed
	}
	n := len(bufs)
	s.link.inject(s.takeEchoes(bufs, offset), offset)
	return n, nil
}

// MTU implements tun.Device.
func (s *Stack) MTU() (int, error) { return s.mtu, nil }

// Name implements tun.Device.
func (s *Stack) Name() (string, error) { return "warren-netstack", nil }

// Events implements tun.Device: EventUp once; closed by Close.
func (s *Stack) Events() <-chan tun.Event { return s.events }

// BatchSize implements tun.Device.
func (s *Stack) BatchSize() int { return batchSize }
