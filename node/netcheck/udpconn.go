package netcheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/pion/stun/v3"

	"github.com/warrenmesh/warren/internal/wire"
)

// UDPConn is a standalone UDP socket for netcheck, for `warren netcheck`
// without a running node, and for tests. Open it with ListenUDP, build the
// Checker with it as Config.Conn, then Start it to feed replies to that
// Checker; Close ends the reader.
type UDPConn struct {
	pc *net.UDPConn

	startOnce sync.Once
	done      chan struct{} // closed when the reader has ended
	started   bool
}

// ListenUDP opens a UDP socket on laddr ("" or ":0" for any port on all
// addresses).
func ListenUDP(laddr string) (*UDPConn, error) {
	if laddr == "" {
		laddr = ":0"
	}
	ua, err := net.ResolveUDPAddr("udp", laddr)
	if err != nil {
		return nil, fmt.Errorf("netcheck: local address %q: %w", laddr, err)
	}
	pc, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("netcheck: open UDP socket on %s: %w", laddr, err)
	}
	return &UDPConn{pc: pc, done: make(chan struct{})}, nil
}

// WriteToUDPAddrPort sends b to addr. It implements PacketConn.
func (u *UDPConn) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	return u.pc.WriteToUDPAddrPort(b, addr)
}

// LocalAddr returns the socket's local address.
func (u *UDPConn) LocalAddr() netip.AddrPort {
	return u.pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Start begins reading the socket in a goroutine, handing every STUN
// packet to c.HandleSTUN and dropping everything else. It runs until
// Close; calls after the first do nothing.
func (u *UDPConn) Start(c *Checker) {
	u.startOnce.Do(func() {
		u.started = true
		go u.read(c)
	})
}

func (u *UDPConn) read(c *Checker) {
	defer close(u.done)
	buf := make([]byte, 64<<10)
	for {
		n, from, err := u.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			c.log.Debug("standalone socket read", "err", err)
			continue // e.g. ICMP port unreachable surfaced as an error
		}
		if pkt := buf[:n]; stun.IsMessage(pkt) {
			c.HandleSTUN(pkt, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()))
		}
	}
}

// Close closes the socket and waits for the reader started by Start.
func (u *UDPConn) Close() error {
	err := u.pc.Close()
	u.startOnce.Do(func() {}) // no Start after Close
	if u.started {
		<-u.done
	}
	return err
}

// Standalone runs one check over a fresh UDP socket bound to laddr (see
// ListenUDP) and closes the socket before returning. cfg.Conn is ignored.
func Standalone(ctx context.Context, cfg Config, laddr string, m *wire.DERPMap) (*Report, error) {
	u, err := ListenUDP(laddr)
	if err != nil {
		return nil, err
	}
	defer u.Close()
	cfg.Conn = u
	c := NewChecker(cfg)
	u.Start(c)
	return c.Run(ctx, m)
}
