package sshserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"
	"golang.org/x/time/rate"

	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/controlclient"
)

// Control is the coordinator as the server needs it;
// *controlclient.Client is one.
type Control interface {
	SSHCall(ctx context.Context, call wire.SSHCall, onAuthURL func(url string)) (*wire.SSHReply, error)
}

// Config configures a Server. HostKey and Control are required.
type Config struct {
	Logger *slog.Logger
	// HostKey is the server's host key (LoadHostKey).
	HostKey ssh.Signer
	// Control takes check, start, end and deny calls.
	Control Control
	// DialMesh opens a connection to a peer over the mesh: to a recorder
	// node. Without it, rules that record to a peer find no recorder.
	DialMesh func(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error)
	// HTTPClient uploads recordings to the coordinator (http.DefaultClient
	// when nil).
	HTTPClient *http.Client
	// HandshakeTimeout bounds the SSH handshake and authentication, but
	// for the wait on a check's sign-in, which CheckTimeout bounds.
	HandshakeTimeout time.Duration // default 30s
	CheckTimeout     time.Duration // default 10m
	// CallTimeout bounds the calls that report sessions and the wait for
	// a recorder to take a recording.
	CallTimeout time.Duration // default 15s
	// MaxConns bounds the connections served at once (more are closed at
	// accept), MaxSessions the sessions and forwards of one connection.
	MaxConns    int // default 32
	MaxSessions int // default 10
}

// Server is the SSH server. Serve runs it on a listener; SetNetmap feeds
// it the policy; Close ends it.
type Server struct {
	cfg   Config
	log   *slog.Logger
	ctx   context.Context // ends at Close
	stop  context.CancelFunc
	slots chan struct{} // a token per connection served
	self  *account      // the user warrend runs as
	root  bool          // warrend runs as root: it may log in as anyone
	deny  *rate.Limiter // deny calls to the coordinator

	mu     sync.Mutex
	nm     *controlclient.Netmap
	conns  map[*conn]struct{}
	lns    map[net.Listener]struct{}
	closed bool
	wg     sync.WaitGroup // every goroutine the server started
}

// New returns a Server; it admits nobody until SetNetmap gives it a
// netmap with SSH rules.
func New(cfg Config) (*Server, error) {
	if err := platformSupported(); err != nil {
		return nil, err
	}
	if cfg.HostKey == nil || cfg.Control == nil {
		return nil, errors.New("sshserver: host key and control required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 30 * time.Second
	}
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = 10 * time.Minute
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 15 * time.Second
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 32
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 10
	}
	self, err := lookupAccount(strconv.Itoa(os.Geteuid()), true)
	if err != nil {
		return nil, fmt.Errorf("sshserver: the user warrend runs as: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, slots: make(chan struct{}, cfg.MaxConns), self: self, root: self.uid == 0,
		deny: rate.NewLimiter(rate.Every(time.Second), 10), conns: map[*conn]struct{}{}, lns: map[net.Listener]struct{}{}}
	s.ctx, s.stop = context.WithCancel(context.Background())
	if !s.root {
		s.log.Warn("ssh: warrend does not run as root: it can only log in as its own user", "user", self.name)
	}
	return s, nil
}

// ErrClosed is returned by Serve after Close.
var ErrClosed = errors.New("sshserver: closed")

// Serve accepts connections on ln until ln fails or Close; it closes ln.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrClosed
	}
	s.lns[ln] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.lns, ln)
		s.mu.Unlock()
		_ = ln.Close()
	}()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return ErrClosed
			}
			return fmt.Errorf("sshserver: accept: %w", err)
		}
		select {
		case s.slots <- struct{}{}:
		default:
			s.log.Warn("ssh: too many connections; closing a new one", "from", nc.RemoteAddr())
			_ = nc.Close()
			continue
		}
		c := &conn{srv: s, nc: nc}
		c.ctx, c.cancel = context.WithCancel(s.ctx)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.cancel()
			_ = nc.Close()
			<-s.slots
			return ErrClosed
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() { <-s.slots }()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
			c.serve()
		}()
	}
}

// SetNetmap gives the server the current netmap, and ends the sessions
// it no longer admits: their peer left, or no rule lets it log in as
// that user any more (or the rule that does is another one).
func (s *Server) SetNetmap(nm *controlclient.Netmap) {
	s.mu.Lock()
	s.nm = nm
	var cut []*conn
	var reasons []string
	for c := range s.conns {
		if c.authed == nil {
			continue
		}
		if why := s.stillAdmitted(c.authed); why != "" {
			cut = append(cut, c)
			reasons = append(reasons, why)
		}
	}
	s.mu.Unlock()
	for i, c := range cut {
		c.cut(reasons[i])
	}
}

// stillAdmitted returns "" when the current netmap still admits a, else
// why not. s.mu must be held.
func (s *Server) stillAdmitted(a *authInfo) string {
	if s.nm == nil {
		return "the node lost its netmap"
	}
	peer, ok := s.nm.Peer(a.peer.ID)
	if !ok {
		return "peer left the netmap (removed, expired, or its user disabled)"
	}
	r := Match(s.nm.SSH, peer, a.login)
	if r == nil {
		return "the policy no longer allows it"
	}
	if r.Rule != a.rule.Rule || r.Action != a.rule.Action || (r.Record == nil) != (a.rule.Record == nil) ||
		r.PortForwarding != a.rule.PortForwarding && a.rule.PortForwarding {
		return "the policy changed: rule " + r.Rule + " applies now"
	}
	return ""
}

// peerByAddr returns the netmap peer with address ip, and the netmap.
func (s *Server) peerByAddr(ip netip.Addr) (wire.Node, *controlclient.Netmap, bool) {
	s.mu.Lock()
	nm := s.nm
	s.mu.Unlock()
	if nm == nil {
		return wire.Node{}, nil, false
	}
	p, ok := nm.PeerByAddr(ip)
	return p, nm, ok
}

// Close stops accepting, ends every connection and session (killing
// their processes), and waits for all the server's goroutines, including
// the end calls of the sessions it cut.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for ln := range s.lns {
		_ = ln.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.cut("the SSH server stopped")
	}
	s.stop()
	s.wg.Wait()
	return nil
}

// goTracked runs f on a goroutine Close waits for. It must be called
// from a goroutine Close waits for (so the count is above zero).
func (s *Server) goTracked(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// callContext makes a context for a report to the coordinator: it
// outlives the session (an end call goes out after the session ended)
// but not the server by more than CallTimeout.
func (s *Server) callContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(s.ctx), s.cfg.CallTimeout)
}

// report sends call to the coordinator in the background, after the
// report after has ended (nil: at once), logging a failure: session
// starts and ends are reported best effort, and a session's end never
// overtakes its start. The channel it returns is closed when the call
// is done.
func (s *Server) report(call wire.SSHCall, after <-chan struct{}) <-chan struct{} {
	call.Command = truncate(call.Command, maxCallCommand)
	call.Reason = truncate(call.Reason, maxCallField)
	call.Recording = truncate(call.Recording, maxCallField)
	if call.Op == wire.SSHOpDeny {
		call.LocalUser = truncate(call.LocalUser, maxCallName)
	}
	done := make(chan struct{})
	s.goTracked(func() {
		defer close(done)
		if after != nil {
			<-after
		}
		ctx, cancel := s.callContext()
		defer cancel()
		r, err := s.cfg.Control.SSHCall(ctx, call, nil)
		if err == nil && r.Code != "" {
			err = fmt.Errorf("%s: %s", r.Code, r.Message)
		}
		if err != nil {
			s.log.Warn("ssh: report to the coordinator", "op", call.Op, "session", call.Session, "err", err)
		}
	})
	return done
}

// What the coordinator takes in an SSHCall's fields, in bytes.
const (
	maxCallCommand = 4096
	maxCallField   = 1024
	maxCallName    = 64
)

// truncate shortens s to at most n bytes, at a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// denied reports a refused login to the coordinator, at most a few a
// second (a scan must not flood the audit log through the node).
func (s *Server) denied(call wire.SSHCall) {
	s.log.Info("ssh: login refused", "src", call.SrcAddr, "user", call.LocalUser, "reason", call.Reason)
	if call.Src == 0 || !s.deny.Allow() {
		return
	}
	call.Op = wire.SSHOpDeny
	s.report(call, nil)
}
