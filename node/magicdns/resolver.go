// Package magicdns is the node's DNS resolver for kernel TUN mode: it
// answers the mesh's names (<peer>.<domain>, the bare <peer>, the
// coordinator's extra records, PTR for mesh addresses) itself and forwards
// every other name, to a split-DNS route's resolvers through the mesh or
// to the resolvers the system had before Warren configured it.
//
// It must never be an open resolver: Serve answers only the sources its
// Config allows (the host itself), and drops everything else unanswered.
// It must never crash or grow on hostile input: queries, answers,
// concurrent forwards and their time are all bounded, and every message it
// sends is a valid DNS message. It does not configure the operating system
// (package osdns does) and holds no state beyond its current zone.
package magicdns

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// The addresses the resolver serves on in TUN mode (Tailscale's, so
// existing habits and firewall rules carry over).
var (
	ServiceV4 = netip.MustParseAddr("100.100.100.100")
	ServiceV6 = netip.MustParseAddr("fd7a:115c:a1e0::53")
)

// Limits.
const (
	// MaxQuery is the largest query read; longer ones are dropped. Real
	// queries are one question and an OPT record, well under 512 bytes.
	MaxQuery = 4096
	// maxUDPAnswer caps an answer over UDP whatever EDNS size the client
	// offers (the DNS flag day's 1232 avoids IP fragmentation).
	maxUDPAnswer = 1232
	// DefaultMaxInflight bounds the queries in progress at once (forwards
	// included); more are dropped, and the client retries.
	DefaultMaxInflight = 64
	// DefaultForwardTimeout bounds one forwarded query (all resolvers).
	DefaultForwardTimeout = 5 * time.Second
)

// DialFunc dials a resolver of a split-DNS route (through the mesh).
type DialFunc func(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error)

// Config configures a Resolver.
type Config struct {
	// Upstreams are the system's resolvers, for names outside the mesh.
	// The service addresses themselves are left out (no loops).
	Upstreams []netip.AddrPort
	// Dial reaches the resolvers of split-DNS routes; nil dials with the
	// host's stack.
	Dial DialFunc
	// Allow reports whether a query from src may be answered; nil allows
	// only loopback and the service addresses.
	Allow func(src netip.Addr) bool
	// MaxInflight and ForwardTimeout default to DefaultMaxInflight and
	// DefaultForwardTimeout.
	MaxInflight    int
	ForwardTimeout time.Duration
	Logger         *slog.Logger
}

// Resolver answers DNS queries; its zone is replaced as netmaps arrive.
type Resolver struct {
	cfg  Config
	log  *slog.Logger
	zone atomic.Pointer[index]
	sem  chan struct{} // queries in progress
	// tcpSem bounds open TCP connections, which may idle between queries,
	// so they cannot hold every slot of sem.
	tcpSem chan struct{}

	refused atomic.Uint64 // queries dropped for their source
	dropped atomic.Uint64 // queries dropped for being malformed, oversized or over the in-flight bound
}

// New returns a resolver with an empty zone.
func New(cfg Config) *Resolver {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = DefaultMaxInflight
	}
	if cfg.ForwardTimeout <= 0 {
		cfg.ForwardTimeout = DefaultForwardTimeout
	}
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = func(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error) {
			return d.DialContext(ctx, network, addr.String())
		}
	}
	if cfg.Allow == nil {
		cfg.Allow = func(src netip.Addr) bool { return IsLocalSource(src, nil) }
	}
	cfg.Upstreams = slices.DeleteFunc(slices.Clone(cfg.Upstreams), func(ap netip.AddrPort) bool {
		a := ap.Addr().Unmap()
		return a == ServiceV4 || a == ServiceV6 || !ap.IsValid()
	})
	r := &Resolver{cfg: cfg, log: cfg.Logger, sem: make(chan struct{}, cfg.MaxInflight),
		tcpSem: make(chan struct{}, max(cfg.MaxInflight/4, 1))}
	r.zone.Store(newIndex(Zone{}))
	return r
}

// IsLocalSource reports whether src is this host as the kernel shows it
// to a socket bound to a service address: loopback, a service address, or
// one of own (the node's mesh addresses).
func IsLocalSource(src netip.Addr, own []netip.Addr) bool {
	src = src.Unmap()
	return src.IsLoopback() || src == ServiceV4 || src == ServiceV6 || slices.Contains(own, src)
}

// SetZone replaces what the resolver answers itself.
func (r *Resolver) SetZone(z Zone) { r.zone.Store(newIndex(z)) }

// Stats counts the queries dropped unanswered.
type Stats struct {
	Refused uint64 // from a source that may not use the resolver
	Dropped uint64 // malformed, oversized, or over the in-flight bound
}

// Stats returns the counters.
func (r *Resolver) Stats() Stats {
	return Stats{Refused: r.refused.Load(), Dropped: r.dropped.Load()}
}

// Respond answers one query in wire format, received over TCP or (tcp
// false) UDP. An answer over UDP fits the client's size (512 bytes, or its
// EDNS size up to 1232); a longer one is truncated with TC set, so the
// client asks again over TCP. It returns nil when the query gets no answer
// at all (too short to have a header, itself a response, too long). It
// blocks only while forwarding, at most ForwardTimeout.
func (r *Resolver) Respond(ctx context.Context, query []byte, tcp bool) []byte {
	if len(query) < 12 || len(query) > MaxQuery {
		r.dropped.Add(1)
		return nil
	}
	req := new(dns.Msg)
	if err := req.Unpack(query); err != nil {
		if query[2]&0x80 != 0 { // QR: never answer a response
			return nil
		}
		return packed(formErr(query), dns.MinMsgSize)
	}
	if req.Response {
		return nil
	}
	maxSize := dns.MaxMsgSize
	if !tcp {
		maxSize = dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			maxSize = min(max(int(opt.UDPSize()), dns.MinMsgSize), maxUDPAnswer)
		}
	}
	resp := r.answer(ctx, req)
	if resp == nil {
		return nil
	}
	return packed(resp, maxSize)
}

// formErr is a FORMERR reply to a query that could not be parsed, keeping
// its ID and opcode.
func formErr(query []byte) *dns.Msg {
	m := new(dns.Msg)
	m.Id = uint16(query[0])<<8 | uint16(query[1])
	m.Opcode = int(query[2]>>3) & 0xf
	m.Response = true
	m.Rcode = dns.RcodeFormatError
	return m
}

// packed packs m into at most maxSize bytes, truncating it (TC set) if it
// is longer. It returns nil if m cannot be packed at all.
func packed(m *dns.Msg, maxSize int) []byte {
	m.Compress = true
	if m.Len() > maxSize {
		m.Truncate(maxSize)
	}
	b, err := m.Pack()
	if err != nil || len(b) > maxSize {
		// Should not happen; an answer that breaks the rules is worse
		// than none.
		return nil
	}
	return b
}

// answer builds the reply to req: from the zone, or forwarded.
func (r *Resolver) answer(ctx context.Context, req *dns.Msg) *dns.Msg {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.RecursionAvailable = true
	if opt := req.IsEdns0(); opt != nil {
		if opt.Version() != 0 {
			resp.Rcode = dns.RcodeBadVers
			resp.SetEdns0(maxUDPAnswer, false)
			return resp
		}
		resp.SetEdns0(maxUDPAnswer, false)
	}
	if req.Opcode != dns.OpcodeQuery {
		resp.Rcode = dns.RcodeNotImplemented
		return resp
	}
	if len(req.Question) != 1 {
		resp.Rcode = dns.RcodeFormatError
		return resp
	}
	q := req.Question[0]
	zone := r.zone.Load()
	if handled, rcode, answers := zone.lookup(q); handled {
		resp.Authoritative = true
		resp.Rcode = rcode
		resp.Answer = answers
		return resp
	}
	resolvers := r.cfg.Upstreams
	dial := DialFunc(nil) // the host's stack, for the system's resolvers
	if rt, ok := zone.route(q.Name); ok {
		resolvers, dial = rt.Resolvers, r.cfg.Dial
	}
	fwd, err := r.forward(ctx, req, resolvers, dial)
	if err != nil {
		r.log.Debug("forward failed", "name", q.Name, "err", err)
		resp.Rcode = dns.RcodeServerFailure
		return resp
	}
	fwd.Id = req.Id
	return fwd
}

var errNoResolvers = errors.New("no resolvers to forward to")

// forward sends req to each resolver in turn until one answers, over UDP,
// and again over TCP when the UDP answer is truncated.
func (r *Resolver) forward(ctx context.Context, req *dns.Msg, resolvers []netip.AddrPort, dial DialFunc) (*dns.Msg, error) {
	if len(resolvers) == 0 {
		return nil, errNoResolvers
	}
	if dial == nil {
		var d net.Dialer
		dial = func(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error) {
			return d.DialContext(ctx, network, addr.String())
		}
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ForwardTimeout)
	defer cancel()
	out := req.Copy()
	out.Id = dns.Id()
	var lastErr error
	for _, addr := range resolvers {
		resp, err := exchange(ctx, dial, "udp", addr, out)
		if err == nil && resp.Truncated {
			resp, err = exchange(ctx, dial, "tcp", addr, out)
		}
		if err == nil {
			return resp, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

// exchange sends m to addr over network and reads the answer, at most
// dns.MaxMsgSize bytes (miekg/dns reads no more).
func exchange(ctx context.Context, dial DialFunc, network string, addr netip.AddrPort, m *dns.Msg) (*dns.Msg, error) {
	c, err := dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	client := &dns.Client{Net: network, UDPSize: dns.DefaultMsgSize}
	resp, _, err := client.ExchangeWithConnContext(ctx, m, &dns.Conn{Conn: c, UDPSize: dns.DefaultMsgSize})
	return resp, err
}
