// Package expose serves a node's exposed ports (warrend --expose): it
// takes the inbound mesh connections to one port of the node's mesh
// address and hands each to a service on the host, in one of three modes:
// plain TCP (the service sees the node's own loopback connection),
// PROXY protocol v2 (a header with the mesh source address and Warren's
// identity TLV first), or HTTP with identity headers (Warren-User-Login,
// Warren-User-Name, Warren-Node, Warren-Tags and X-Forwarded-For, set by
// the node after it removed every such header the client sent).
//
// It also keeps Conns, the table of the connections it made to services
// (the address a service sees as its client's → the mesh source), so the
// node's whois can answer for them.
//
// It must never hand a service an identity taken from anything but the
// node's netmap (the caller's Peer function), never pass on a Warren-*,
// X-Forwarded-For or Forwarded header a client sent, and never dial
// anything but the configured target.
package expose

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"

	"github.com/warrenmesh/warren/internal/proxyproto"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/proxy"
)

// Mode is how connections reach the service.
type Mode string

// Modes, as written after the target in --expose PORT=HOST:PORT,MODE.
const (
	Plain         Mode = ""               // plain TCP
	ProxyProtocol Mode = "proxy-protocol" // a PROXY v2 header first
	HTTPIdentity  Mode = "http-identity"  // HTTP, with identity headers
)

// ParseMode reads a mode name ("" or "tcp" is Plain).
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(s)); m {
	case Plain, "tcp":
		return Plain, nil
	case ProxyProtocol, HTTPIdentity:
		return m, nil
	}
	return Plain, fmt.Errorf("unknown mode %q: want http-identity or proxy-protocol (or none, for plain TCP)", s)
}

// String is the mode's name; "tcp" for Plain.
func (m Mode) String() string {
	if m == Plain {
		return "tcp"
	}
	return string(m)
}

// DefaultMaxConns bounds concurrent connections per exposed port.
const DefaultMaxConns = 1024

// Config configures Serve.
type Config struct {
	Port   uint16 // the exposed port on the mesh address
	Target string // host:port of the service
	Mode   Mode
	// Peer returns the netmap's record of the node holding mesh address
	// a; required. A source it does not know (a host behind a peer's
	// subnet route) gets HTTP 403 in http-identity mode, a PROXY header
	// without identity in proxy-protocol mode, and plain TCP as before.
	Peer func(a netip.Addr) (wire.Node, bool)
	// Conns records the connections made to the target; required.
	Conns *Conns
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// MaxConns bounds concurrent inbound connections; default
	// DefaultMaxConns.
	MaxConns int
}

// Serve serves ln (the mesh listener of cfg.Port) until ctx ends; it
// closes ln and every connection it made before returning, and returns
// nil when ctx ended.
func Serve(ctx context.Context, ln net.Listener, cfg Config) error {
	if cfg.Peer == nil || cfg.Conns == nil {
		_ = ln.Close()
		return errors.New("expose: Config.Peer and Config.Conns are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.Mode == HTTPIdentity {
		return serveHTTP(ctx, ln, cfg)
	}
	var dialer net.Dialer
	return proxy.Forward(ctx, ln, cfg.Target, proxy.Config{
		Dial: func(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr.String())
		},
		Resolve: func(ctx context.Context, host string) (netip.Addr, error) {
			addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
			if err != nil || len(addrs) == 0 {
				return netip.Addr{}, proxy.ErrUnknownHost
			}
			return addrs[0], nil
		},
		Logger:   cfg.Logger,
		MaxConns: cfg.MaxConns,
		Upstream: func(client, up net.Conn) (func(), error) { return cfg.upstream(client, up) },
	})
}

// upstream records a TCP-mode connection to the target and, in
// proxy-protocol mode, writes the PROXY header. A source the netmap has
// no node for (a host behind a peer's subnet route, which the filter
// admitted by policy) is forwarded as before, with no identity TLV, and
// not recorded.
func (cfg *Config) upstream(client, up net.Conn) (func(), error) {
	src, dst := addrPort(client.RemoteAddr()), addrPort(client.LocalAddr())
	n, known := cfg.Peer(src.Addr())
	if cfg.Mode == ProxyProtocol {
		h := proxyproto.Header{Src: src, Dst: dst}
		if known {
			id, err := proxyproto.IdentityTLV(identity(n))
			if err != nil {
				return nil, err
			}
			h.TLVs = []proxyproto.TLV{id}
		}
		if err := proxyproto.WriteV2(up, h); err != nil {
			return nil, fmt.Errorf("write the PROXY header: %w", err)
		}
	}
	if !known {
		return func() {}, nil
	}
	return cfg.Conns.add(addrPort(up.LocalAddr()), Conn{Src: src, Node: n.ID, Port: cfg.Port, Mode: cfg.Mode}), nil
}

// identity is what the PROXY header tells of n: tagged nodes carry no
// user.
func identity(n wire.Node) proxyproto.Identity {
	id := proxyproto.Identity{Node: n.Name, Tags: n.Tags}
	if len(n.Tags) == 0 {
		id.User, id.UserName = n.User, n.UserName
	}
	return id
}

func addrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case nil:
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// Conn is a connection the node made to an exposed service for a mesh
// client.
type Conn struct {
	Src  netip.AddrPort // the mesh client's address and port
	Node wire.NodeID    // the client's node
	Port uint16         // the exposed port it connected to
	Mode Mode
}

// Conns maps the local address of each connection the node made to a
// service (what the service sees as its client's address) to the mesh
// client it carries. The zero value is ready to use; safe for concurrent
// use.
type Conns struct {
	mu sync.Mutex
	m  map[netip.AddrPort]Conn
}

// Lookup returns the connection whose node-side address is local.
func (t *Conns) Lookup(local netip.AddrPort) (Conn, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.m[unmap(local)]
	return c, ok
}

// Len is the number of connections recorded.
func (t *Conns) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// add records c under local and returns the function that removes it.
func (t *Conns) add(local netip.AddrPort, c Conn) func() {
	local = unmap(local)
	t.mu.Lock()
	if t.m == nil {
		t.m = make(map[netip.AddrPort]Conn)
	}
	t.m[local] = c
	t.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			t.mu.Lock()
			delete(t.m, local)
			t.mu.Unlock()
		})
	}
}

func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}
