package magic

import (
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/disco"
)

// Bounds on what a peer can make us remember.
const (
	maxLearned      = 16                     // addresses learned from a peer's pings
	learnedLifetime = 2 * time.Minute        // a learned address not heard from since is forgotten
	maxPending      = 64                     // pings awaiting a pong, per peer
	pendingLifetime = 5 * time.Second        // a ping unanswered for this long is given up
	pingPerAddr     = 500 * time.Millisecond // at most one ping per address this often, outside heartbeats
	maxLastPing     = 4 * maxPending         // addresses whose last ping time is kept (for pingPerAddr)
)

// peerIndex is an immutable snapshot of the peers, read on the packet
// paths without a lock.
type peerIndex struct {
	byKey   map[key.NodePublic]*peer
	byDisco map[key.DiscoPublic]*peer
	byAddr  map[netip.AddrPort]*peer
}

// peer is what the Conn knows of the way to one peer. The identity fields
// are set at creation; disco key, endpoints and home region change under
// mu; the path fields are atomics read on every packet.
type peer struct {
	c  *Conn
	ep *Endpoint

	mu        sync.Mutex
	disco     key.DiscoPublic
	shared    disco.SharedKey // precomputed box key with disco
	netmapEPs []netip.AddrPort
	learned   map[netip.AddrPort]int64 // address -> last ping from it (c.now)
	pending   map[[12]byte]sentPing
	lastPing  map[netip.AddrPort]int64 // address -> last ping we sent it
	attempts  int                      // discovery rounds since the path was lost

	home          atomic.Int64 // peer's home relay region
	best          atomic.Pointer[bestAddr]
	trustUntil    atomic.Int64 // c.now until which best is used alone
	lastSend      atomic.Int64 // c.now of the last WireGuard packet sent
	lastHeartbeat atomic.Int64
	lastDiscovery atomic.Int64
	wakeAt        atomic.Int64 // c.now of the last wake request
	// handshook: a WireGuard handshake message went to or came from the
	// peer since this Conn started (see noteWireGuard).
	handshook atomic.Bool
	staleAt   atomic.Int64 // c.now of the last stale-session report
	// lastHandshake identifies the last handshake message that came from
	// the peer, so that copies of it are dropped (see firstCopy).
	lastHandshake atomic.Pointer[hsID]
	// lastInit is the last handshake initiation sent to the peer, until a
	// response comes or it is sent again on a new path (see resendInit).
	lastInit atomic.Pointer[sentInit]
	// lastCallMeMaybe is c.now when we last sent the peer a call-me-maybe.
	lastCallMeMaybe atomic.Int64
	// unanswered is c.now of the first packet sent since the peer was
	// last heard from, or notWaiting (see liveness.go).
	unanswered atomic.Int64
}

// bestAddr is a proven direct path.
type bestAddr struct {
	addr netip.AddrPort
	ep   conn.Endpoint
	rtt  time.Duration
}

// sentPing is a ping awaiting its pong.
type sentPing struct {
	to netip.AddrPort
	at int64
}

// Endpoint is the conn.Endpoint WireGuard holds for a peer: its node key,
// never an address, so the path can change under it.
type Endpoint struct {
	Key key.NodePublic
	c   *Conn
	dst netip.Addr // what DstIP returns; set at creation, never changed
}

// newEndpoint returns the Endpoint for the peer with node key k and mesh
// addresses addrs. Its DstIP is the first mesh address, or, when the
// netmap gives none, an address derived from the node key: either way
// one that is the peer's alone and does not move with its path.
func newEndpoint(c *Conn, k key.NodePublic, addrs []netip.Prefix) *Endpoint {
	e := &Endpoint{Key: k, c: c}
	for _, a := range addrs {
		if a.Addr().IsValid() {
			e.dst = a.Addr().Unmap()
			break
		}
	}
	if !e.dst.IsValid() {
		raw := k.Raw()
		e.dst = netip.AddrFrom16([16]byte(raw[:16]))
	}
	return e
}

// ClearSrc implements conn.Endpoint.
func (e *Endpoint) ClearSrc() {}

// SrcToString implements conn.Endpoint.
func (e *Endpoint) SrcToString() string { return "" }

// RelayAddr is the made-up address DstToString gives a peer reached
// through a relay: RelayAddr:N means relay region N, and port 0 no path
// yet. (Tailscale's tools show relayed peers the same way.)
var RelayAddr = netip.MustParseAddr("127.3.3.40")

// DstToString implements conn.Endpoint: the peer's path as an address,
// which is what WireGuard's UAPI reports as its endpoint (wg(8) shows
// it): the direct address, or RelayAddr with the relay region as port.
// WireGuard itself only logs it; the endpoint stays the node key.
func (e *Endpoint) DstToString() string {
	if e.c == nil {
		return netip.AddrPortFrom(RelayAddr, 0).String()
	}
	return e.c.pathAddr(e.Key).String()
}

// DstToBytes implements conn.Endpoint (input to WireGuard's cookie MAC).
func (e *Endpoint) DstToBytes() []byte { k := e.Key.Raw(); return k[:] }

// DstIP implements conn.Endpoint. WireGuard's handshake rate limiter
// keys its buckets on it, so it is a stable per-peer address (see
// newEndpoint), never the path's: relayed peers have no path address,
// and a zero address would put every one of them in a single bucket.
func (e *Endpoint) DstIP() netip.Addr { return e.dst }

// SrcIP implements conn.Endpoint.
func (e *Endpoint) SrcIP() netip.Addr { return netip.Addr{} }

func (c *Conn) peer(k key.NodePublic) *peer { return c.peers.Load().byKey[k] }

// SetPeers makes the Conn's peers match the netmap's: new peers are
// added, changed ones updated in place (their paths kept), missing ones
// forgotten. It returns nothing: WireGuard is given each peer's node key
// as its endpoint ("nodekey:…", see ParseEndpoint).
func (c *Conn) SetPeers(nodes []wire.Node) {
	type added struct {
		p     *peer
		addrs []netip.AddrPort
	}
	var fresh []added
	defer func() {
		for _, a := range fresh {
			c.pingNew(a.p, a.addrs)
		}
	}()
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.peers.Load()
	next := make(map[key.NodePublic]*peer, len(nodes))
	for _, n := range nodes {
		if n.NodeKey.IsZero() {
			continue
		}
		p := old.byKey[n.NodeKey]
		if p == nil {
			p = &peer{c: c, ep: newEndpoint(c, n.NodeKey, n.Addresses),
				learned: map[netip.AddrPort]int64{}, pending: map[[12]byte]sentPing{}, lastPing: map[netip.AddrPort]int64{}}
			p.lastDiscovery.Store(-int64(time.Hour))
			p.wakeAt.Store(-int64(time.Hour))
			p.staleAt.Store(-int64(time.Hour))
			p.lastCallMeMaybe.Store(-int64(time.Hour))
			// Nothing sent yet: not active (the clock starts at 0 when the
			// Conn does, so a zero would count as a send at start-up).
			p.lastSend.Store(-int64(time.Hour))
			p.unanswered.Store(notWaiting)
		}
		p.mu.Lock()
		if p.disco != n.DiscoKey {
			// A new disco key is a restarted peer: what we proved about
			// the old one says nothing about it.
			p.disco = n.DiscoKey
			p.shared = disco.SharedKey{}
			if !n.DiscoKey.IsZero() {
				p.shared = disco.Shared(c.cfg.DiscoKey, n.DiscoKey)
			}
			p.forgetPathLocked()
		}
		if !slices.Equal(p.netmapEPs, n.Endpoints) {
			var newAddrs []netip.AddrPort
			for _, a := range n.Endpoints {
				if !slices.Contains(p.netmapEPs, a) {
					newAddrs = append(newAddrs, a)
				}
			}
			if len(p.netmapEPs) > 0 && len(newAddrs) > 0 {
				fresh = append(fresh, added{p, newAddrs})
			}
			p.netmapEPs = slices.Clone(n.Endpoints)
			p.attempts = 0
			if b := p.best.Load(); b != nil && !slices.Contains(p.netmapEPs, b.addr) {
				if _, ok := p.learned[b.addr]; !ok {
					// The peer no longer announces the address we reach
					// it at (it restarted on another port, or its NAT
					// moved it): stop trusting it, so traffic takes the
					// relay and discovery finds the new address now.
					p.best.Store(nil)
					p.trustUntil.Store(0)
				}
			}
		}
		p.mu.Unlock()
		p.home.Store(int64(n.HomeRelay))
		next[n.NodeKey] = p
	}
	c.publishLocked(next)
}

// publishLocked builds and stores the index for the given peers. Callers
// hold c.mu.
func (c *Conn) publishLocked(byKey map[key.NodePublic]*peer) {
	idx := &peerIndex{byKey: byKey, byDisco: make(map[key.DiscoPublic]*peer, len(byKey)),
		byAddr: make(map[netip.AddrPort]*peer)}
	for _, p := range byKey {
		p.mu.Lock()
		if !p.disco.IsZero() {
			idx.byDisco[p.disco] = p
		}
		for _, a := range p.netmapEPs {
			idx.byAddr[a] = p
		}
		for a := range p.learned {
			idx.byAddr[a] = p
		}
		p.mu.Unlock()
	}
	c.peers.Store(idx)
}

// forgetPathLocked drops the proven path and the disco state. Callers
// hold p.mu.
func (p *peer) forgetPathLocked() {
	p.best.Store(nil)
	p.trustUntil.Store(0)
	clear(p.pending)
	clear(p.learned)
	p.attempts = 0
}

// candidates returns the addresses to probe: the netmap's and the learned
// ones.
func (p *peer) candidates() []netip.AddrPort {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := slices.Clone(p.netmapEPs)
	for a := range p.learned {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// learn records that a ping from the peer came from addr, so WireGuard
// packets from there belong to this peer. It reports whether the address
// was new.
func (p *peer) learn(addr netip.AddrPort) bool {
	now := p.c.now()
	p.mu.Lock()
	_, known := p.learned[addr]
	if !known && slices.Contains(p.netmapEPs, addr) {
		p.mu.Unlock()
		return false
	}
	p.learned[addr] = now
	if !known && len(p.learned) > maxLearned {
		best := p.best.Load()
		oldest, at := netip.AddrPort{}, int64(math.MaxInt64) // not now+1: others may have learned after this read the clock
		for a, t := range p.learned {
			if best != nil && best.addr == a {
				continue // still the path in use (as in expireLearned)
			}
			if t < at {
				oldest, at = a, t
			}
		}
		delete(p.learned, oldest)
	}
	p.mu.Unlock()
	if !known {
		p.c.mu.Lock()
		if p.c.peers.Load().byKey[p.ep.Key] == p {
			p.c.publishLocked(maps.Clone(p.c.peers.Load().byKey))
		}
		p.c.mu.Unlock()
	}
	return !known
}

// expireLearned forgets learned addresses not heard from in a while and
// pings never answered; it reports whether the address set changed.
func (p *peer) expireLearned(now int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	changed := false
	for a, t := range p.learned {
		if now-t > int64(learnedLifetime) {
			if b := p.best.Load(); b != nil && b.addr == a {
				continue // still the path in use
			}
			delete(p.learned, a)
			changed = true
		}
	}
	for tx, s := range p.pending {
		if now-s.at > int64(pendingLifetime) {
			delete(p.pending, tx)
		}
	}
	p.pruneLastPingLocked(now)
	return changed
}

// pruneLastPingLocked forgets ping times older than pingPerAddr (they no
// longer hold a ping back); if that leaves maxLastPing or more, it forgets
// them all, which at worst lets one more ping per address through.
// Callers hold p.mu.
func (p *peer) pruneLastPingLocked(now int64) {
	for a, t := range p.lastPing {
		if now-t >= int64(pingPerAddr) {
			delete(p.lastPing, a)
		}
	}
	if len(p.lastPing) >= maxLastPing {
		clear(p.lastPing)
	}
}

// trusted reports whether the direct path may carry traffic alone.
func (p *peer) trusted(now int64) (*bestAddr, bool) {
	b := p.best.Load()
	return b, b != nil && now < p.trustUntil.Load()
}

// Path describes how packets to the peer with node key k travel now, for
// status output: "direct ADDR", "relay CODE", or "none".
func (c *Conn) Path(k key.NodePublic) string {
	p := c.peer(k)
	if p == nil {
		return "none"
	}
	if b, ok := p.trusted(c.now()); ok && !c.relayOnly() {
		return fmt.Sprintf("direct %s", b.addr)
	}
	region := c.relays.regionFor(p)
	if region == nil {
		if p.best.Load() == nil && len(p.candidates()) > 0 {
			return "direct (unproven; no relay)"
		}
		return "none"
	}
	return "relay " + region.Code
}

// pathAddr is Path as an address: the direct path's, or RelayAddr with
// the relay region (0: none) as port.
func (c *Conn) pathAddr(k key.NodePublic) netip.AddrPort {
	p := c.peer(k)
	if p == nil {
		return netip.AddrPortFrom(RelayAddr, 0)
	}
	if b, ok := p.trusted(c.now()); ok && !c.cfg.RelayOnly {
		return b.addr
	}
	if region := c.relays.regionFor(p); region != nil {
		return netip.AddrPortFrom(RelayAddr, uint16(region.ID))
	}
	return netip.AddrPortFrom(RelayAddr, 0)
}

// PathInfo is the detail behind Path.
type PathInfo struct {
	Direct   netip.AddrPort // zero when relayed
	RTT      time.Duration  // of the direct path's last pong
	Relay    string         // region code used when not direct
	PeerHome int            // the peer's home region
}

// PathInfo returns the detail behind Path.
func (c *Conn) PathInfo(k key.NodePublic) (PathInfo, bool) {
	p := c.peer(k)
	if p == nil {
		return PathInfo{}, false
	}
	info := PathInfo{PeerHome: int(p.home.Load())}
	if b, ok := p.trusted(c.now()); ok && !c.relayOnly() {
		info.Direct, info.RTT = b.addr, b.rtt
	} else if r := c.relays.regionFor(p); r != nil {
		info.Relay = r.Code
	}
	return info, true
}
