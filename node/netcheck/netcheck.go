// Package netcheck measures what the node's network looks like: whether
// UDP gets out, the node's public (STUN-mapped) endpoint, how its NAT maps
// ports (endpoint-independent or not), and the latency to each relay
// region, from which it picks the preferred (home) region.
//
// STUN goes out over the socket the caller hands in (the node's WireGuard
// socket, so the mapping learned is the one peers must use); replies come
// back through Checker.HandleSTUN. Regions whose STUN servers do not answer
// are measured with an HTTP GET of region.URL+"/probe" instead.
//
// This package only measures and reports. It must never change the node's
// configuration or paths itself, never listen for anything but STUN replies
// to its own transactions, and never leave a goroutine behind after Run
// returns.
package netcheck

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/stun/v3"

	"github.com/warrenmesh/warren/internal/wire"
)

// PacketConn is the socket netcheck sends STUN from. The node's engine
// implements it over the WireGuard socket (demultiplexing STUN replies to
// Checker.HandleSTUN); tests do the same over a plain loopback socket.
type PacketConn interface {
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
}

// Config configures a Checker. Only Conn is required.
type Config struct {
	// Conn is the socket STUN requests go out on.
	Conn PacketConn
	// Resolver resolves STUN server host names; nil means
	// net.DefaultResolver. Tests inject their own.
	Resolver func(ctx context.Context, host string) ([]netip.Addr, error)
	// HTTPClient runs the /probe fallback; nil means http.DefaultClient.
	HTTPClient *http.Client
	// Logger receives debug details; nil discards them.
	Logger *slog.Logger
	// Timeout bounds a whole Run; zero means DefaultTimeout. The first
	// half is the STUN phase, the rest is left for the HTTP fallback.
	Timeout time.Duration
	// Retries are the delays between successive sends of one STUN request
	// (so len(Retries)+1 sends at most); nil means DefaultRetries.
	Retries []time.Duration
}

// DefaultTimeout is the default bound on one Run.
const DefaultTimeout = 3 * time.Second

// DefaultRetries are the default delays before the second and third send of
// a STUN request that has had no answer.
var DefaultRetries = []time.Duration{100 * time.Millisecond, 300 * time.Millisecond}

// Checker runs network checks. It is safe for concurrent use: HandleSTUN
// may be called from the socket's reader while Run runs, and several Runs
// may overlap (each has its own transactions).
type Checker struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	pending map[[stun.TransactionIDSize]byte]pendingTx
}

// pendingTx is one STUN request in flight.
type pendingTx struct {
	probe *stunProbe
	sent  time.Time
}

// NewChecker returns a Checker for cfg.
func NewChecker(cfg Config) *Checker {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Retries == nil {
		cfg.Retries = DefaultRetries
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Resolver == nil {
		cfg.Resolver = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Checker{
		cfg:     cfg,
		log:     log.With("component", "netcheck"),
		pending: make(map[[stun.TransactionIDSize]byte]pendingTx),
	}
}

// HandleSTUN is given every packet that arrived on the socket and looks
// like STUN (stun.IsMessage). It returns true if it consumed the packet,
// that is, if it was a reply to one of the Checker's transactions in
// flight; the caller drops or handles packets it returns false for. It
// never panics on hostile input and never blocks.
func (c *Checker) HandleSTUN(pkt []byte, from netip.AddrPort) bool {
	if !stun.IsMessage(pkt) {
		return false
	}
	now := time.Now()
	txID := [stun.TransactionIDSize]byte(pkt[8:20])
	c.mu.Lock()
	tx, ok := c.pending[txID]
	if ok {
		delete(c.pending, txID)
	}
	c.mu.Unlock()
	if !ok {
		return false
	}
	reply := stunReply{rtt: now.Sub(tx.sent), at: now, from: from}
	reply.mapped, reply.err = parseBindingResponse(pkt)
	if reply.err != nil {
		c.log.Debug("bad STUN reply", "server", tx.probe.server, "from", from, "err", reply.err)
	}
	tx.probe.deliver(reply)
	return true
}

// parseBindingResponse returns the mapped address in a STUN Binding
// success response.
func parseBindingResponse(pkt []byte) (netip.AddrPort, error) {
	var m stun.Message
	if err := stun.Decode(pkt, &m); err != nil {
		return netip.AddrPort{}, fmt.Errorf("decode STUN reply: %w", err)
	}
	if m.Contains(stun.AttrFingerprint) {
		if err := stun.Fingerprint.Check(&m); err != nil {
			return netip.AddrPort{}, fmt.Errorf("STUN reply fingerprint: %w", err)
		}
	}
	switch m.Type {
	case stun.BindingSuccess:
	case stun.BindingError:
		var code stun.ErrorCodeAttribute
		if err := code.GetFrom(&m); err == nil {
			return netip.AddrPort{}, fmt.Errorf("STUN server refused: %d %s", code.Code, code.Reason)
		}
		return netip.AddrPort{}, errors.New("STUN server refused the binding request")
	default:
		return netip.AddrPort{}, fmt.Errorf("unexpected STUN message %s", m.Type)
	}
	var ip net.IP
	var port int
	var xor stun.XORMappedAddress
	if err := xor.GetFrom(&m); err == nil {
		ip, port = xor.IP, xor.Port
	} else {
		var plain stun.MappedAddress
		if err2 := plain.GetFrom(&m); err2 != nil {
			return netip.AddrPort{}, fmt.Errorf("STUN reply has no mapped address: %w", err)
		}
		ip, port = plain.IP, plain.Port
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok || !addr.IsValid() || addr.IsUnspecified() || port <= 0 || port > 0xffff {
		return netip.AddrPort{}, fmt.Errorf("STUN reply has unusable mapped address %v port %d", ip, port)
	}
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), nil
}

// Run measures the network now against the regions of m and returns the
// report. It sends STUN Binding requests to every STUN server of every
// region (each up to len(Config.Retries)+1 times, stopping as soon as all
// have answered), then probes over HTTP the regions whose STUN gave no
// answer (and at once those that list no STUN servers). Run returns when
// everything is measured or Config.Timeout has passed, whichever is first;
// a region that could not be measured is simply absent from the latencies.
// It fails only on a bad call (no Conn, empty map) or when ctx ends.
func (c *Checker) Run(ctx context.Context, m *wire.DERPMap) (*Report, error) {
	if c.cfg.Conn == nil {
		return nil, errors.New("netcheck: no socket configured (set Config.Conn)")
	}
	if m == nil || len(m.Regions) == 0 {
		return nil, errors.New("netcheck: the DERP map has no regions; nothing to measure")
	}
	start := time.Now()
	runCtx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()

	r := &run{c: c, m: m, start: start, latency: make(map[int]regionLatency)}
	r.execute(runCtx)

	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("netcheck: %w", err)
	}
	rep := r.report()
	rep.Duration = time.Since(start)
	c.log.Debug("netcheck done", "udp", rep.UDP, "endpoint", rep.PublicEndpoint,
		"mapping", rep.MappingVariesByDest, "preferred", rep.PreferredRegion, "took", rep.Duration)
	return rep, nil
}

// register records a transaction in flight.
func (c *Checker) register(txID [stun.TransactionIDSize]byte, p *stunProbe, sent time.Time) {
	c.mu.Lock()
	c.pending[txID] = pendingTx{probe: p, sent: sent}
	c.mu.Unlock()
}

// forget drops transactions that will not be waited for any more.
func (c *Checker) forget(txIDs [][stun.TransactionIDSize]byte) {
	c.mu.Lock()
	for _, id := range txIDs {
		delete(c.pending, id)
	}
	c.mu.Unlock()
}

// inFlight reports how many transactions are pending (for tests).
func (c *Checker) inFlight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}
