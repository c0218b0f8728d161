package magic

import (
	"maps"
	"math"
	"net/netip"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/node/disco"
)

// handleDisco handles a sealed disco packet that came from addr over UDP
// (relayFrom nil) or through a relay from the peer relayFrom (whose node
// key the relay verified). Anything not from a known peer's disco key, or
// not opening under our key, is dropped.
func (c *Conn) handleDisco(pkt []byte, from netip.AddrPort, relayFrom *peer) {
	sender, err := disco.Sender(pkt)
	if err != nil {
		return
	}
	p := c.peers.Load().byDisco[sender]
	if p == nil || (relayFrom != nil && relayFrom != p) {
		return
	}
	p.mu.Lock()
	shared := p.shared
	p.mu.Unlock()
	msg, err := shared.Open(pkt)
	if err != nil {
		c.log.Debug("disco message does not open", "from", from, "err", err)
		return
	}
	p.heard()
	switch m := msg.(type) {
	case *disco.Ping:
		if relayFrom != nil || m.NodeKey != p.ep.Key {
			return
		}
		c.onPing(p, m, from)
	case *disco.Pong:
		if relayFrom != nil {
			return
		}
		c.onPong(p, m, from)
	case *disco.CallMeMaybe:
		if relayFrom == nil {
			return // only meaningful through the relay
		}
		c.onCallMeMaybe(p, m)
	}
}

// onPing answers a peer's ping and remembers the address it came from, so
// that its WireGuard packets from there are accepted. If that address is
// not our proven path to the peer, we ping it back at once: it is the
// peer's current address as its NAT shows it (a new one after rebinding).
func (c *Conn) onPing(p *peer, m *disco.Ping, from netip.AddrPort) {
	if p.learn(from) {
		c.log.Debug("disco: peer pings from a new address", "peer", p.ep.Key.ShortString(), "addr", from)
	}
	c.sendDisco(p, from, &disco.Pong{TxID: m.TxID, Src: from})
	now := c.now()
	best, ok := p.trusted(now)
	if !ok || best.addr != from || p.stale(now) {
		c.ping(p, from, false)
	}
}

// onPong accepts a pong to one of our pings from the address we pinged:
// it proves the direct path there. The path becomes the peer's best when
// there is none, the old one missed its heartbeat, or this one is clearly
// faster.
func (c *Conn) onPong(p *peer, m *disco.Pong, from netip.AddrPort) {
	now := c.now()
	p.mu.Lock()
	sent, ok := p.pending[m.TxID]
	if ok {
		delete(p.pending, m.TxID)
	}
	p.mu.Unlock()
	if !ok || sent.to != from {
		c.log.Debug("disco: unexpected pong", "peer", p.ep.Key.ShortString(), "from", from, "known", ok)
		return
	}
	rtt := time.Duration(now - sent.at)
	best := p.best.Load()
	var newPath conn.Endpoint
	switch {
	case best != nil && best.addr == from:
		p.best.Store(&bestAddr{addr: from, ep: best.ep, rtt: rtt})
	case best == nil || now >= p.trustUntil.Load() || p.stale(now) || rtt < best.rtt*8/10:
		ep, err := c.udp.ParseEndpoint(from.String())
		if err != nil {
			return
		}
		p.best.Store(&bestAddr{addr: from, ep: ep, rtt: rtt})
		newPath = ep
		c.log.Info("direct path", "peer", p.ep.Key.ShortString(), "addr", from, "rtt", rtt)
	default:
		c.log.Debug("disco: alternative path answers; keeping the current one", "peer", p.ep.Key.ShortString(), "addr", from, "rtt", rtt)
		return // a slower alternative while the best one works
	}
	p.trustUntil.Store(now + int64(trustDuration))
	p.mu.Lock()
	p.attempts = 0
	p.mu.Unlock()
	if newPath != nil {
		c.resendInit(p, newPath, now)
	}
}

// onCallMeMaybe pings every endpoint the peer listed, now: the peer
// opened its NAT for them before it asked (see opener.go). Then, unless we
// asked the peer ourselves a moment ago, it asks the peer back: our pings
// have just mapped our NAT for the peer's endpoints, so the peer's full
// pings, which it sends on our call-me-maybe, cannot reach our router
// before our own flow exists.
func (c *Conn) onCallMeMaybe(p *peer, m *disco.CallMeMaybe) {
	for _, a := range m.Endpoints {
		if a.IsValid() && !a.Addr().IsUnspecified() {
			c.ping(p, a, true)
		}
	}
	if now := c.now(); now-p.lastCallMeMaybe.Load() >= int64(callMeMaybeGap) {
		c.callMeMaybe(p, now)
	}
}

// callMeMaybeGap is how long after sending a peer a call-me-maybe we do
// not answer one of its with another (so two nodes never keep answering
// each other).
const callMeMaybeGap = time.Second

// callMeMaybe asks p, through the relay, to ping our endpoints.
func (c *Conn) callMeMaybe(p *peer, now int64) {
	p.mu.Lock()
	shared := p.shared
	p.mu.Unlock()
	eps, _ := c.Advertised()
	if shared.IsZero() || len(eps) == 0 {
		return
	}
	if len(eps) > 32 {
		eps = eps[:32]
	}
	p.lastCallMeMaybe.Store(now)
	c.relays.sendOne(p, shared.Seal(&disco.CallMeMaybe{Endpoints: eps}))
}

// ping sends a disco ping to addr unless one went there very recently
// (force skips that check).
func (c *Conn) ping(p *peer, addr netip.AddrPort, force bool) {
	c.pingTTL(p, addr, force, 0)
}

// pingTTL is ping with a TTL (0: the socket's own); it reports whether the
// ping went out.
func (c *Conn) pingTTL(p *peer, addr netip.AddrPort, force bool, ttl int) bool {
	now := c.now()
	tx := disco.NewTxID()
	p.mu.Lock()
	last, pinged := p.lastPing[addr] // (a missing entry is not a ping at time 0, when the Conn started)
	if !force && pinged && now-last < int64(pingPerAddr) {
		p.mu.Unlock()
		return false
	}
	if !pinged && len(p.lastPing) >= maxLastPing {
		p.pruneLastPingLocked(now) // addresses come from pings and call-me-maybes: keep the map bounded
	}
	p.lastPing[addr] = now
	if len(p.pending) >= maxPending {
		// From the largest time, not now+1: other goroutines may have
		// added pings after this one read the clock.
		var oldest [12]byte
		at := int64(math.MaxInt64)
		for t, s := range p.pending {
			if s.at < at {
				oldest, at = t, s.at
			}
		}
		delete(p.pending, oldest)
	}
	p.pending[tx] = sentPing{to: addr, at: now}
	p.mu.Unlock()
	return c.sendDiscoTTL(p, addr, &disco.Ping{TxID: tx, NodeKey: c.nodePub}, ttl)
}

// sendDisco seals m to the peer and sends it over UDP to addr.
func (c *Conn) sendDisco(p *peer, addr netip.AddrPort, m disco.Message) {
	c.sendDiscoTTL(p, addr, m, 0)
}

// discover probes every candidate address of p (openers first, see
// opener.go) and asks it, through the relay, to ping ours.
func (c *Conn) discover(p *peer, now int64) {
	p.lastDiscovery.Store(now)
	p.mu.Lock()
	p.attempts++
	attempts := p.attempts
	p.mu.Unlock()
	cands := p.candidates()
	c.log.Debug("disco: discovery round", "peer", p.ep.Key.ShortString(), "candidates", cands, "attempt", attempts)
	// Openers and the pings due now go before the call-me-maybe: the
	// peer's answering pings must find our NAT open.
	c.probe(p, cands, true)
	c.callMeMaybe(p, now)
}

// stale reports whether the best path missed a heartbeat's pong: none
// came within a heartbeat interval plus twice its round trip and some
// slack.
func (p *peer) stale(now int64) bool {
	best := p.best.Load()
	if best == nil {
		return false
	}
	lastPong := p.trustUntil.Load() - int64(trustDuration)
	return now-lastPong > int64(heartbeatInterval+2*best.rtt+500*time.Millisecond)
}

// pingNew pings addresses the netmap just added for an active peer, at
// once: a peer whose NAT moved it announces its new endpoint this way,
// and our ping opens our NAT for its pings from there.
func (c *Conn) pingNew(p *peer, addrs []netip.AddrPort) {
	now := c.now()
	if c.relayOnly() || now-p.lastSend.Load() > int64(activeWindow) {
		return
	}
	if c.probe(p, addrs, false) && now-p.lastCallMeMaybe.Load() >= int64(callMeMaybeGap) {
		c.callMeMaybe(p, now) // the peer's pings, not ours, go first (see opener.go)
	}
}

// discoveryInterval is the back-off between discovery rounds: 1 s, 2 s,
// 4 s … up to maxDiscoveryInterval.
func (p *peer) discoveryInterval() int64 {
	p.mu.Lock()
	n := p.attempts
	p.mu.Unlock()
	d := time.Second
	for i := 1; i < n && d < maxDiscoveryInterval; i++ {
		d *= 2
	}
	return int64(min(d, maxDiscoveryInterval))
}

// maintain keeps paths: heartbeat pings on active direct paths, discovery
// rounds for active peers without one (at once when a packet to such a
// peer asks), and expiry of learned addresses.
func (c *Conn) maintain() {
	defer c.wg.Done()
	t := time.NewTicker(tickInterval)
	defer t.Stop()
	sweep := 0
	for {
		select {
		case <-c.ctx.Done():
			return
		case p := <-c.stale:
			if c.cfg.OnStaleSession != nil && c.peer(p.ep.Key) == p && !p.handshook.Load() {
				c.log.Info("peer uses a session from before this node started: starting a handshake", "peer", p.ep.Key.ShortString())
				c.cfg.OnStaleSession(p.ep.Key)
			}
		case p := <-c.wake:
			now := c.now()
			if _, ok := p.trusted(now); !ok && now-p.lastDiscovery.Load() >= int64(time.Second) {
				c.discover(p, now)
			}
		case <-t.C:
			if c.relayOnly() {
				continue
			}
			now := c.now()
			idx := c.peers.Load()
			for _, p := range idx.byKey {
				c.tend(p, now)
			}
			if sweep++; sweep%20 == 0 {
				c.expire(idx, now)
			}
		}
	}
}

// tend does what one peer's path needs now.
func (c *Conn) tend(p *peer, now int64) {
	if now-p.lastSend.Load() > int64(activeWindow) {
		return
	}
	if best, ok := p.trusted(now); ok {
		// A heartbeat's pong is overdue: our NAT may have moved us to a
		// new port (the peer's NAT then drops our pings from it), so learn
		// our public endpoint again and tell peers.
		if p.stale(now) {
			c.remeasure()
		}
		if d := now - p.lastHeartbeat.Load(); d >= int64(heartbeatInterval) ||
			(d >= int64(probeAfter) && p.waiting(now) >= probeAfter) {
			// Due, or sent packets wait for an answer: ask now.
			p.lastHeartbeat.Store(now)
			c.ping(p, best.addr, true)
		}
		return
	}
	if p.best.Load() != nil {
		if now-p.trustUntil.Load() > int64(lostPathMemory) {
			// Long dead: stop sending copies there; discovery finds a
			// path again if one comes back.
			p.best.Store(nil)
		} else {
			c.remeasure() // a direct path was lost: same reason
		}
	}
	if now-p.lastDiscovery.Load() >= p.discoveryInterval() {
		c.discover(p, now)
	}
}

// expire forgets stale learned addresses and republishes the index when
// any went.
func (c *Conn) expire(idx *peerIndex, now int64) {
	changed := false
	for _, p := range idx.byKey {
		if p.expireLearned(now) {
			changed = true
		}
	}
	if !changed {
		return
	}
	c.mu.Lock()
	c.publishLocked(maps.Clone(c.peers.Load().byKey))
	c.mu.Unlock()
}

// handleRelayDisco handles a disco packet a relay delivered from src.
func (c *Conn) handleRelayDisco(src key.NodePublic, pkt []byte) {
	p := c.peer(src)
	if p == nil || c.relayOnly() {
		return
	}
	c.handleDisco(pkt, netip.AddrPort{}, p)
}

// remeasure asks for a network check soon (at most every
// remeasureInterval), to refresh the STUN-learned endpoint.
func (c *Conn) remeasure() {
	now := c.now()
	last := c.lastRemeasure.Load()
	if now-last < int64(remeasureInterval) || !c.lastRemeasure.CompareAndSwap(last, now) {
		return
	}
	c.log.Debug("direct path in trouble: measuring the network again")
	c.poke()
}
