package magic

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/node/disco"
)

// Bind is the conn.Bind WireGuard uses; it belongs to a Conn.
type Bind struct{ c *Conn }

// Bind returns the conn.Bind to give WireGuard.
func (c *Conn) Bind() *Bind { return &Bind{c: c} }

// Open implements conn.Bind: it opens the UDP socket and returns its
// receive functions, wrapped to take disco and STUN packets out and to
// label WireGuard packets with their peer, plus one function that
// receives what the relays deliver. When the OS gives no UDP socket on
// any port (Wine 8 lacks an ioctl Go's net package sets on every UDP
// socket), it warns and opens the relays alone: the node still works,
// relayed. A chosen port that cannot be had is still an error.
func (b *Bind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	c := b.c
	fns, actual, err := c.udp.Open(port)
	switch {
	case err != nil && port != 0:
		return nil, 0, err
	case err != nil:
		c.log.Warn("no UDP socket: every peer is reached through relays", "err", err)
		fns, actual = nil, 0
		c.noUDP.Store(true)
	default:
		c.noUDP.Store(false)
	}
	gen := &bindGen{closed: make(chan struct{})}
	if actual != 0 {
		if l, err := openLowTTL(actual); err == nil {
			c.lowTTL.Store(l)
		} else {
			c.log.Debug("no openers for discovery", "err", err)
		}
	}
	c.mu.Lock()
	c.gen, c.port = gen, actual
	c.mu.Unlock()
	wrapped := make([]conn.ReceiveFunc, 0, len(fns)+1)
	for _, fn := range fns {
		wrapped = append(wrapped, c.receiveUDP(fn))
	}
	wrapped = append(wrapped, c.receiveRelay(gen))
	c.poke()
	return wrapped, actual, nil
}

// Close implements conn.Bind: it closes the socket and ends the receive
// functions.
func (b *Bind) Close() error {
	c := b.c
	c.mu.Lock()
	if c.gen != nil {
		close(c.gen.closed)
		c.gen = nil
	}
	c.mu.Unlock()
	if l := c.lowTTL.Swap(nil); l != nil {
		l.close() // first: it holds the socket open
	}
	return c.udp.Close()
}

// SetMark implements conn.Bind.
func (b *Bind) SetMark(mark uint32) error { return b.c.udp.SetMark(mark) }

// BatchSize implements conn.Bind.
func (b *Bind) BatchSize() int { return b.c.udp.BatchSize() }

// ParseEndpoint implements conn.Bind: s is a node key ("nodekey:…"), or a
// plain ip:port.
func (b *Bind) ParseEndpoint(s string) (conn.Endpoint, error) {
	if k, err := key.ParsePublic[key.NodeKind](s); err == nil {
		if p := b.c.peer(k); p != nil {
			return p.ep, nil
		}
		return newEndpoint(b.c, k, nil), nil
	}
	return b.c.udp.ParseEndpoint(s)
}

// Send implements conn.Bind: over the proven direct path while it is
// trusted (and also through the relay once a heartbeat's pong is
// overdue); otherwise through the peer's relay region (and also to the
// last direct path, which may still work), starting discovery.
func (b *Bind) Send(bufs [][]byte, ep conn.Endpoint) error {
	c := b.c
	e, ok := ep.(*Endpoint)
	if !ok {
		return c.udp.Send(bufs, ep)
	}
	p := c.peer(e.Key)
	if p == nil {
		return errNoPath
	}
	now := c.now()
	p.lastSend.Store(now)
	p.sent(now)
	if len(bufs) > 0 && isHandshake(bufs[0]) {
		// wireguard-go sends each handshake message in a batch of its own.
		p.handshook.Store(true)
		if bufs[0][0] == wgInitiation {
			p.lastInit.Store(&sentInit{pkt: slices.Clone(bufs[0]), at: now})
		}
	}
	if c.relayOnly() {
		return c.relays.send(p, bufs)
	}
	best, ok := p.trusted(now)
	if ok && !p.stale(now) {
		return c.udp.Send(bufs, best.ep)
	}
	if ok {
		// A heartbeat's pong is overdue: the path may have died (UDP
		// blocked, a NAT gone). Keep sending on it, and copies through
		// the relay too, so traffic survives if it has: the receiver's
		// WireGuard drops whichever copy comes second. Waiting until the
		// trust runs out would stall traffic for up to trustDuration.
		errUDP := c.udp.Send(bufs, best.ep)
		if err := c.relays.send(p, bufs); err == nil {
			return nil
		}
		return errUDP
	}
	if best != nil {
		_ = c.udp.Send(bufs, best.ep)
	}
	c.wakeFor(p, now)
	err := c.relays.send(p, bufs)
	if err == errNoPath && best == nil {
		// No relay to fall back on (the coordinator lists none): try the
		// netmap's endpoints directly, unproven; WireGuard authenticates
		// whatever answers.
		return c.sendToCandidates(p, bufs)
	}
	return err
}

// sentInit is the last handshake initiation sent to a peer.
type sentInit struct {
	pkt []byte
	at  int64 // c.now
}

// resendInit sends p's last handshake initiation again on the path ep
// just proven, if no response has come since it went out and WireGuard
// would not retry it yet: it went only through the relay and the peer's
// endpoints, and may well be lost (the peer not yet on the relay, a NAT
// dropping it), and WireGuard waits 5 s before its next attempt. A peer
// that did receive it drops the copy before its WireGuard sees it
// (firstCopy): WireGuard's own replay check does not stop a copy that
// arrives while the first is still being handled.
func (c *Conn) resendInit(p *peer, ep conn.Endpoint, now int64) {
	si := p.lastInit.Swap(nil)
	if si == nil || now-si.at >= int64(initRetry) {
		return
	}
	if err := c.udp.Send([][]byte{si.pkt}, ep); err != nil {
		c.log.Debug("resend handshake initiation", "peer", p.ep.Key.ShortString(), "err", err)
	}
}

// initRetry is when WireGuard itself sends a new initiation for an
// unanswered one (device.RekeyTimeout).
const initRetry = 5 * time.Second

// sendToCandidates sends to every endpoint the netmap lists for p.
func (c *Conn) sendToCandidates(p *peer, bufs [][]byte) error {
	p.mu.Lock()
	eps := p.netmapEPs
	p.mu.Unlock()
	if len(eps) == 0 {
		return errNoPath
	}
	var firstErr error
	for _, a := range eps {
		ep, err := c.udp.ParseEndpoint(a.String())
		if err == nil {
			err = c.udp.Send(bufs, ep)
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// wakeFor asks the maintenance loop for a discovery round for p, at most
// once a second.
func (c *Conn) wakeFor(p *peer, now int64) {
	last := p.wakeAt.Load()
	if now-last < int64(1e9) || !p.wakeAt.CompareAndSwap(last, now) {
		return
	}
	select {
	case c.wake <- p:
	default:
	}
}

// isWireGuard reports whether pkt looks like a WireGuard message: types
// 1 to 4, then three zero bytes.
func isWireGuard(pkt []byte) bool {
	return len(pkt) >= 4 && pkt[0] >= 1 && pkt[0] <= 4 && pkt[1] == 0 && pkt[2] == 0 && pkt[3] == 0
}

// WireGuard message types (the first byte of every message).
const (
	wgInitiation = 1
	wgResponse   = 2
	wgData       = 4
)

// isHandshake reports whether a WireGuard message is a handshake
// initiation or response.
func isHandshake(pkt []byte) bool {
	return len(pkt) > 0 && (pkt[0] == wgInitiation || pkt[0] == wgResponse)
}

// noteWireGuard watches a WireGuard message from p on its way to
// WireGuard, and reports whether WireGuard should see it: not when it is
// a second copy of a handshake message (see firstCopy).
//
// It also watches for a session this run of the node never made: data
// from a peer with which no handshake passed since the Conn started can
// only be on a session with an earlier run (before a restart with the
// same keys). WireGuard drops it, and the peer would keep using that
// session until its own timers give up; the maintenance loop reports it
// so a handshake starts now.
func (c *Conn) noteWireGuard(p *peer, pkt []byte) bool {
	p.heard()
	switch {
	case isHandshake(pkt):
		if !p.firstCopy(pkt) {
			return false
		}
		p.handshook.Store(true)
		if pkt[0] == wgResponse {
			p.lastInit.Store(nil) // answered
		}
	case len(pkt) > 0 && pkt[0] == wgData && !p.handshook.Load():
		now := c.now()
		last := p.staleAt.Load()
		if now-last < int64(time.Second) || !p.staleAt.CompareAndSwap(last, now) {
			return true
		}
		select {
		case c.stale <- p:
		default:
		}
	}
	return true
}

// hsID identifies one handshake message: its type and the fields after
// it that are sent in the clear and new in every message WireGuard makes
// (the sender index, then the ephemeral public key, of which a response
// also carries the receiver index first).
type hsID [40]byte

// firstCopy reports whether the handshake message pkt from p is not a
// copy of the last one that came from p, and remembers it. Copies are
// normal here: an initiation goes through the relay and again on a direct
// path just proven (resendInit), and Send doubles everything while a
// direct path is in doubt. WireGuard must see only one: wireguard-go
// checks an initiation for replay before it records it, on several
// goroutines at once, so two copies arriving together (one on the UDP
// receive function, one on the relay's) can both be answered, with
// different keys. The peer keeps the first answer it gets, this node the
// last one it made, and when they differ nothing gets through until the
// peer's timers start a new handshake 15 s later. Safe from any
// goroutine: of copies racing here, exactly one is reported first.
func (p *peer) firstCopy(pkt []byte) bool {
	var id hsID
	copy(id[:], pkt)
	for {
		last := p.lastHandshake.Load()
		if last != nil && *last == id {
			return false
		}
		if p.lastHandshake.CompareAndSwap(last, &id) {
			return true
		}
	}
}

// stunMagicCookie is the fixed value at offset 4 of every STUN message
// (RFC 5389).
const stunMagicCookie = 0x2112A442

// isSTUN reports whether pkt looks like a STUN message (top bits zero and
// the magic cookie in place).
func isSTUN(pkt []byte) bool {
	return len(pkt) >= 20 && pkt[0]&0xc0 == 0 && binary.BigEndian.Uint32(pkt[4:8]) == stunMagicCookie
}

// receiveUDP wraps a UDP receive function: disco and STUN packets are
// handled here and hidden from WireGuard (size 0); WireGuard packets from
// a peer's known address carry the peer's endpoint; packets from unknown
// addresses are dropped (a peer at a new address is found by its pings).
func (c *Conn) receiveUDP(fn conn.ReceiveFunc) conn.ReceiveFunc {
	return func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		n, err := fn(packets, sizes, eps)
		idx := c.peers.Load()
		for i := 0; i < n; i++ {
			pkt := packets[i][:sizes[i]]
			std, ok := eps[i].(*conn.StdNetEndpoint)
			if !ok {
				sizes[i] = 0
				continue
			}
			from := netip.AddrPortFrom(std.AddrPort.Addr().Unmap(), std.AddrPort.Port())
			switch {
			case isWireGuard(pkt):
				if p := idx.byAddr[from]; p != nil && !c.relayOnly() && c.noteWireGuard(p, pkt) {
					eps[i] = p.ep
					continue
				}
				sizes[i] = 0
			case disco.Looks(pkt):
				if !c.relayOnly() {
					c.handleDisco(pkt, from, nil)
				}
				sizes[i] = 0
			case isSTUN(pkt):
				c.checker.HandleSTUN(pkt, from)
				sizes[i] = 0
			default:
				sizes[i] = 0
			}
		}
		return n, err
	}
}

// receiveRelay returns the receive function for packets from relays; it
// ends with net.ErrClosed when the bind generation closes. It may return
// no packet (all it took were copies WireGuard had seen).
func (c *Conn) receiveRelay(gen *bindGen) conn.ReceiveFunc {
	return func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		var rp relayPacket
		select {
		case rp = <-c.derpRecv:
		case <-gen.closed:
			return 0, net.ErrClosed
		}
		n := 0
		for {
			if c.noteWireGuard(rp.from, rp.data) {
				sizes[n] = copy(packets[n], rp.data)
				eps[n] = rp.from.ep
				n++
				if n == len(packets) {
					return n, nil
				}
			}
			select {
			case rp = <-c.derpRecv:
			default:
				return n, nil
			}
		}
	}
}
