// Package connlimit caps the connections a TCP server holds open: at most
// PerSource connections from one source address and at most Total in all.
// A connection over a cap is accepted and closed at once (so the listen
// queue keeps draining and every other client is still served), counted,
// and never handed to the server.
//
// It must never block Accept on a capped source, never count a connection
// twice or release it twice, and never decide by anything but the peer's
// IP address (ports change with every connection).
package connlimit

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Config sets the caps. Zero (or negative) turns a cap off.
type Config struct {
	// PerSource is the most connections one IP address may hold open.
	// Behind a proxy or load balancer every client has the proxy's
	// address: raise it, or turn it off.
	PerSource int
	// Total is the most connections the listener holds open in all; keep
	// it below the process's file descriptor limit (see DefaultTotal).
	Total int
	// OnRefuse, if set, is called (from Accept's goroutine) with the
	// address of each connection refused and why.
	OnRefuse func(remote netip.Addr, reason string)
}

// Reasons given to OnRefuse.
const (
	ReasonPerSource = "per-source connection cap"
	ReasonTotal     = "total connection cap"
)

// Stats are a Listener's counters.
type Stats struct {
	Open              int    // connections open now
	RefusedPerSource  uint64 // connections closed at once: their source was at its cap
	RefusedTotal      uint64 // connections closed at once: the listener was at its total cap
	SourcesWithConns  int    // distinct source addresses with open connections
	MaxOpenFromSource int    // the most connections one source holds now
}

// Listener is a net.Listener that enforces Config. Close closes the
// underlying listener; connections already accepted stay open.
type Listener struct {
	net.Listener
	cfg Config

	mu     sync.Mutex
	open   int
	bySrc  map[netip.Addr]int
	refSrc atomic.Uint64
	refTot atomic.Uint64
}

// New wraps ln.
func New(ln net.Listener, cfg Config) *Listener {
	return &Listener{Listener: ln, cfg: cfg, bySrc: make(map[netip.Addr]int)}
}

// Accept returns the next connection within the caps. Connections over a
// cap are closed and skipped.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := sourceOf(c.RemoteAddr())
		if reason := l.admit(src); reason != "" {
			// Report first, so the report is made by the time the peer
			// sees its connection close.
			if l.cfg.OnRefuse != nil {
				l.cfg.OnRefuse(src, reason)
			}
			_ = c.Close()
			continue
		}
		return &conn{Conn: c, l: l, src: src}, nil
	}
}

// admit counts a new connection from src, or returns why it is refused.
func (l *Listener) admit(src netip.Addr) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cfg.Total > 0 && l.open >= l.cfg.Total {
		l.refTot.Add(1)
		return ReasonTotal
	}
	if l.cfg.PerSource > 0 && l.bySrc[src] >= l.cfg.PerSource {
		l.refSrc.Add(1)
		return ReasonPerSource
	}
	l.open++
	l.bySrc[src]++
	return ""
}

func (l *Listener) release(src netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if n := l.bySrc[src] - 1; n > 0 {
		l.bySrc[src] = n
	} else {
		delete(l.bySrc, src)
	}
}

// Stats returns the listener's counters.
func (l *Listener) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := Stats{Open: l.open, SourcesWithConns: len(l.bySrc),
		RefusedPerSource: l.refSrc.Load(), RefusedTotal: l.refTot.Load()}
	for _, n := range l.bySrc {
		st.MaxOpenFromSource = max(st.MaxOpenFromSource, n)
	}
	return st
}

// sourceOf returns the IP address of a peer; IPv4-mapped IPv6 addresses
// count as their IPv4 address. Addresses without an IP (unix sockets)
// share the zero Addr.
func sourceOf(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	if a == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// conn releases its slot once, on the first Close.
type conn struct {
	net.Conn
	l    *Listener
	src  netip.Addr
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.src) })
	return err
}

// NetConn returns the wrapped connection (as tls.Conn does), for code that
// needs the concrete type.
func (c *conn) NetConn() net.Conn { return c.Conn }

// ErrBadConfig is returned by Validate.
var ErrBadConfig = errors.New("connlimit: a per-source cap above the total cap can never be reached")

// Validate reports a Config whose caps contradict each other.
func (cfg Config) Validate() error {
	if cfg.PerSource > 0 && cfg.Total > 0 && cfg.PerSource > cfg.Total {
		return ErrBadConfig
	}
	return nil
}
