// Package proxy runs the node's local proxies, through which unprivileged
// apps on the machine reach mesh services when the node runs in userspace
// (netstack) mode: a SOCKS5 and HTTP proxy on one port (the protocol is
// detected per connection) and a TCP port forwarder (`warren forward`).
//
// The proxy has no notion of allowed destinations. Every name goes through
// the node's Resolver (Warren names from the netmap) and every connection
// through the node's Dialer (its netstack), which are the only way out and
// where policy applies. It must never dial or resolve by any other means (no
// net.Dial fallback, no system DNS), and the SOCKS/HTTP proxy must only
// listen on loopback or a unix socket: Serve refuses any other IP listener,
// since a proxy reachable from the network would lend the node's mesh access
// to anyone on it. It never logs request contents or credentials
// (Proxy-Authorization is dropped, never forwarded or logged).
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Dialer dials a TCP connection to a mesh address (the node's netstack).
// For precise error replies it should return errors that wrap
// syscall.ECONNREFUSED when the target refused the connection and
// context.DeadlineExceeded (or a net.Error whose Timeout is true) when the
// attempt timed out.
type Dialer func(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error)

// Resolver maps a host name (e.g. "db", "db.warren.internal") to a mesh
// address; it returns an error wrapping ErrUnknownHost for names it doesn't
// know. IP literals never reach it.
type Resolver func(ctx context.Context, host string) (netip.Addr, error)

// ErrUnknownHost is what a Resolver wraps for a name that is not in the
// node's netmap; the proxies report it as SOCKS reply 0x04 or HTTP 502
// naming the host.
var ErrUnknownHost = errors.New("unknown host")

// ErrNotLoopback is returned (wrapped) by Serve and RequireLoopback for a
// listener that is reachable from the network.
var ErrNotLoopback = errors.New("listener is not on a loopback address")

// Defaults for Config fields left zero.
const (
	DefaultDialTimeout = 10 * time.Second
	DefaultMaxConns    = 1024
	// handshakeTimeout bounds the SOCKS greeting and request or the HTTP
	// request head, so idle half-open clients don't pin goroutines.
	handshakeTimeout = 10 * time.Second
	// maxRefusing bounds the connections being told "busy" at once; beyond
	// it, clients over MaxConns are closed without a reply.
	maxRefusing = 64
)

// Config configures a Server or Forward.
type Config struct {
	// Dial connects to a mesh address; required. It is the only way the
	// proxy reaches anything.
	Dial Dialer
	// Resolve maps names to mesh addresses; required.
	Resolve Resolver
	// Logger receives per-connection diagnostics; nil discards them.
	Logger *slog.Logger
	// DialTimeout bounds resolving and connecting to the target; default 10s.
	DialTimeout time.Duration
	// MaxConns bounds concurrent proxied connections; default 1024. Over it,
	// new clients are refused (SOCKS reply 0x01 / HTTP 503) and closed.
	MaxConns int
	// Upstream, when set, is called by Forward with each client and the
	// connection just made to the target, before any byte is copied (it
	// may write a preamble to upstream). An error closes both; otherwise
	// release runs once both have been spliced to the end.
	Upstream func(client, upstream net.Conn) (release func(), err error)
}

// Stats are a Server's counters since New.
type Stats struct {
	// Accepted counts client connections accepted, refused ones included.
	Accepted uint64
	// Active is the number of client connections being served now.
	Active int64
	// Refused counts clients turned away because MaxConns were active.
	Refused uint64
	// BytesOut counts bytes copied from clients to targets.
	BytesOut uint64
	// BytesIn counts bytes copied from targets to clients.
	BytesIn uint64
}

// Server serves SOCKS5 and HTTP proxy protocols. It detects the protocol
// from the first byte on each connection (0x05 -> SOCKS5, otherwise HTTP),
// so one port serves both. It must only be served on loopback.
type Server struct {
	cfg       Config
	log       *slog.Logger
	handshake time.Duration
	// target, when set (by Forward), sends every connection to one place
	// without any proxy protocol.
	target *forwardTarget

	ctx    context.Context // cancelled by Close; bounds dials
	cancel context.CancelFunc
	slots  chan struct{} // one per admitted connection, cap MaxConns
	refuse chan struct{} // one per connection being refused, cap maxRefusing

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{} // client and upstream conns
	wg        sync.WaitGroup

	accepted, refused, bytesOut, bytesIn atomic.Uint64
	active                               atomic.Int64

	// testHookConnDone, if set, runs after a connection's slot is released.
	testHookConnDone func()
}

// New checks cfg and returns a Server ready to Serve.
func New(cfg Config) (*Server, error) {
	if cfg.Dial == nil {
		return nil, errors.New("proxy: Config.Dial is required (the node's netstack dialer)")
	}
	if cfg.Resolve == nil {
		return nil, errors.New("proxy: Config.Resolve is required (the node's netmap resolver)")
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg:       cfg,
		log:       log,
		handshake: handshakeTimeout,
		ctx:       ctx,
		cancel:    cancel,
		slots:     make(chan struct{}, cfg.MaxConns),
		refuse:    make(chan struct{}, maxRefusing),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[net.Conn]struct{}),
	}, nil
}

// RequireLoopback returns an error wrapping ErrNotLoopback if addr is an IP
// address other than loopback. Unix sockets and non-IP (in-memory) listeners
// pass.
func RequireLoopback(addr net.Addr) error {
	var ip netip.Addr
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case *net.UnixAddr:
		return nil
	default:
		switch addr.Network() {
		case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6", "ip", "ip4", "ip6":
			ap, err := netip.ParseAddrPort(addr.String())
			if err != nil {
				return fmt.Errorf("proxy: listener address %q: %w", addr.String(), ErrNotLoopback)
			}
			ip = ap.Addr()
		default:
			return nil
		}
	}
	if !ip.Unmap().IsLoopback() {
		return fmt.Errorf("proxy: refusing to serve on %s: %w; listen on 127.0.0.1, ::1 or a unix socket, "+
			"or the proxy would lend this node's mesh access to the network", addr, ErrNotLoopback)
	}
	return nil
}

// Serve accepts on ln until ln is closed or Close is called; it returns nil
// after Close, and an error wrapping net.ErrClosed if ln was closed by
// someone else. It refuses (returns ErrNotLoopback) a listener on a
// non-loopback IP address.
func (s *Server) Serve(ln net.Listener) error {
	if err := RequireLoopback(ln.Addr()); err != nil {
		return err
	}
	return s.serve(ln)
}

// temporary is implemented by accept errors worth retrying (EMFILE...).
type temporary interface{ Temporary() bool }

func (s *Server) serve(ln net.Listener) error {
	if !s.addListener(ln) {
		_ = ln.Close()
		return nil
	}
	defer s.removeListener(ln)
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return nil
			}
			var te temporary
			if errors.As(err, &te) && te.Temporary() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("proxy: accept failed; retrying", "listener", ln.Addr().String(), "err", err, "backoff", backoff)
				t := time.NewTimer(backoff)
				select {
				case <-t.C:
				case <-s.ctx.Done():
					t.Stop()
					return nil
				}
				continue
			}
			return fmt.Errorf("proxy: accept on %s: %w", ln.Addr(), err)
		}
		backoff = 0
		s.accepted.Add(1)
		s.dispatch(c)
	}
}

// dispatch starts serving c if a slot is free, or starts refusing it
// politely, or closes it when even the refusal pool is full.
func (s *Server) dispatch(c net.Conn) {
	select {
	case s.slots <- struct{}{}:
		s.active.Add(1)
		release := func() {
			s.active.Add(-1)
			<-s.slots
			if h := s.testHookConnDone; h != nil {
				h()
			}
		}
		if !s.start(c, true, release) {
			release()
		}
		return
	default:
	}
	s.refused.Add(1)
	select {
	case s.refuse <- struct{}{}:
		s.start(c, false, func() { <-s.refuse })
	default:
		s.log.Debug("proxy: over MaxConns; closing client", "client", c.RemoteAddr().String())
		_ = c.Close()
	}
}

// start runs handle(c) in a goroutine tracked by the Server; it reports
// false (and closes c) if the Server is closed.
func (s *Server) start(c net.Conn, admitted bool, done func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close()
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer done()
		defer s.closeConn(c)
		s.handle(c, admitted)
	}()
	return true
}

// handle serves one client connection; the caller closes c.
func (s *Server) handle(c net.Conn, admitted bool) {
	if s.target != nil {
		if admitted {
			s.serveForward(c)
		}
		return
	}
	_ = c.SetDeadline(time.Now().Add(s.handshake))
	var first [1]byte
	if _, err := io.ReadFull(c, first[:]); err != nil {
		s.log.Debug("proxy: client sent nothing", "client", c.RemoteAddr().String(), "err", err)
		return
	}
	switch first[0] {
	case socksVersion:
		s.serveSOCKS(c, admitted)
	case 0x04:
		s.log.Debug("proxy: SOCKS4 is not supported; use SOCKS5", "client", c.RemoteAddr().String())
		lingerClose(c)
	default:
		s.serveHTTP(c, first[0], admitted)
	}
}

// track registers an upstream conn so Close closes it; false means the
// Server is closed (and c has been closed).
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close()
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

// closeConn closes c and forgets it.
func (s *Server) closeConn(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	_ = c.Close()
}

func (s *Server) addListener(ln net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.listeners[ln] = struct{}{}
	return true
}

func (s *Server) removeListener(ln net.Listener) {
	s.mu.Lock()
	delete(s.listeners, ln)
	s.mu.Unlock()
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// shutdown closes listeners and connections and cancels dials, without
// waiting for goroutines.
func (s *Server) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.cancel()
	for ln := range s.listeners {
		_ = ln.Close()
	}
	for c := range s.conns {
		_ = c.Close()
	}
}

// Close stops accepting, closes every proxied connection and waits for all
// goroutines it started. It is safe to call more than once.
func (s *Server) Close() error {
	s.shutdown()
	s.wg.Wait()
	return nil
}

// Stats returns the Server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Accepted: s.accepted.Load(),
		Active:   s.active.Load(),
		Refused:  s.refused.Load(),
		BytesOut: s.bytesOut.Load(),
		BytesIn:  s.bytesIn.Load(),
	}
}
