package magic

import (
	"net/netip"
	"slices"
	"time"

	"github.com/warrenmesh/warren/node/disco"
)

// Openers: how discovery gets through NAT routers that do not firewall.
//
// A home router that drops unsolicited packets is easy: both sides ping,
// the first pings die at the far router, and each side's own pings open
// its router for the other's. A Linux router with MASQUERADE and no input
// firewall is not: a ping that arrives before the far side has sent its
// own goes to the far router itself and leaves a conntrack entry there,
// and that entry makes MASQUERADE give the far side's own flow to us
// another port, which our router then takes for unsolicited too. Whoever
// pings first spoils the path, and more pings keep it spoiled.
//
// So before asking a peer (call-me-maybe) to ping us, discovery sends
// each of the peer's IPv4 endpoints an opener: a ping whose TTL lets it
// through our own NAT router (which maps the flow) but not past the next
// router on the internet, so the peer's router never sees it. The peer's
// pings then arrive at our router as replies, get through, and are
// answered, and its router mapped them on the way out. Having pinged, the
// peer asks us back with a call-me-maybe of its own (onCallMeMaybe), and
// only then do we ping it at full TTL: its router has its flow to us by
// then, however long the relay or a busy machine took, so our pings are
// replies there too. A peer that never asks back (one not on the relay
// yet) gets our full pings after openerFallback.
//
// The opener needs at least one router between the two NATs, which the
// internet has; two NATs on one link still meet only on the relay. Only
// Linux can send them (see opener_linux.go); elsewhere discovery pings at
// full TTL at once, as before.

// openerTTL is an opener's TTL: one hop to our NAT router, which forwards
// it with TTL 1, and the next router drops it.
const openerTTL = 2

// openerFallback is how long full-TTL pings to opened addresses wait for
// the peer to ask us back: sent any earlier, they could reach an
// unfiltering router before the peer's own pings leave it (a timing
// wager lost on any busy machine); a peer that answers asks well within
// it, and one that does not gets them then.
const openerFallback = 2 * time.Second

// sendOpeners sends an opener ping to each IPv4 address in addrs and
// returns the addresses it reached our socket's send path for (none where
// openers are not available).
func (c *Conn) sendOpeners(p *peer, addrs []netip.AddrPort) []netip.AddrPort {
	l := c.lowTTL.Load()
	if l == nil {
		return nil
	}
	var opened []netip.AddrPort
	for _, a := range addrs {
		if !a.Addr().Unmap().Is4() {
			continue
		}
		if c.pingTTL(p, a, true, openerTTL) {
			opened = append(opened, a)
		}
	}
	return opened
}

// probe pings addrs for p: those it can send openers to get an opener now
// and a full ping after openerFallback (unless a direct path is proven by
// then); the rest get a full ping now. It returns after sending what is
// due now, and reports whether it sent any opener.
func (c *Conn) probe(p *peer, addrs []netip.AddrPort, force bool) bool {
	opened := c.sendOpeners(p, addrs)
	for _, a := range addrs {
		if !slices.Contains(opened, a) {
			c.ping(p, a, force)
		}
	}
	if len(opened) == 0 {
		return false
	}
	c.after(openerFallback, func() {
		if _, ok := p.trusted(c.now()); ok {
			return
		}
		for _, a := range opened {
			c.ping(p, a, true)
		}
	})
	return true
}

// after runs fn on its own goroutine after d, unless the Conn closes
// first; Close waits for an fn that has started.
func (c *Conn) after(d time.Duration, fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx.Err() != nil {
		return
	}
	c.wg.Add(1)
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		defer c.wg.Done()
		c.mu.Lock()
		delete(c.timers, t)
		c.mu.Unlock()
		if c.ctx.Err() == nil {
			fn()
		}
	})
	c.timers[t] = struct{}{}
}

// stopTimers cancels the functions after has not started yet. The Conn's
// context must be done.
func (c *Conn) stopTimers() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for t := range c.timers {
		if t.Stop() {
			c.wg.Done()
		}
		delete(c.timers, t)
	}
}

// sendDiscoTTL is sendDisco with a TTL (0: the socket's own): it reports
// whether the packet went out.
func (c *Conn) sendDiscoTTL(p *peer, addr netip.AddrPort, m disco.Message, ttl int) bool {
	p.mu.Lock()
	shared := p.shared
	p.mu.Unlock()
	if shared.IsZero() {
		return false
	}
	pkt := shared.Seal(m)
	var err error
	if ttl > 0 {
		l := c.lowTTL.Load()
		if l == nil {
			return false
		}
		err = l.send(pkt, addr, ttl)
	} else {
		err = c.sendUDP(pkt, addr)
	}
	if err != nil {
		c.log.Debug("send disco", "to", addr, "ttl", ttl, "err", err)
		return false
	}
	return true
}
