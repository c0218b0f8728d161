// Package control is the coordinator's side of the control channel: one
// websocket per node, Noise IK inside, carrying the wire protocol. It
// authenticates the node's machine key, registers it through the registry,
// and streams its netmap (full map, then deltas) until the channel closes.
//
// It must never trust anything a node sends before the Noise handshake has
// proven the machine key, never read more than wire.MaxNodeMessage per
// message, and never block the netmap engine on a slow node.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/warrenmesh/warren/coordinator/access"
	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/auth"
	"github.com/warrenmesh/warren/coordinator/flowlog"
	"github.com/warrenmesh/warren/coordinator/login"
	"github.com/warrenmesh/warren/coordinator/netmap"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/noise"
	"github.com/warrenmesh/warren/internal/wire"
)

// Paths served by Handler.
const (
	KeyPath     = "/key"     // the coordinator's public key, JSON
	ControlPath = "/control" // the websocket control channel
	Subprotocol = "warren-control-v1"
)

// KeyResponse is the JSON served at KeyPath.
type KeyResponse struct {
	Key             key.ControlPublic `json:"key"`
	ProtocolVersion int               `json:"protocolVersion"`
}

// Config configures a Server.
type Config struct {
	Key      key.ControlPrivate // required
	Registry *registry.Registry // required
	Engine   *netmap.Engine     // required
	Audit    *audit.Log         // required
	// Failures counts failed handshakes and clients that send nothing in
	// time (nil: a counter logging to Logger).
	Failures *audit.Failures
	Logger   *slog.Logger
	// KeepAlive is how often a streaming channel carries a keep-alive
	// (which nodes of protocol version 2 answer); 0 means 30 s.
	KeepAlive time.Duration
	// HandshakeTimeout bounds the Noise handshake, and then each message
	// the node must send at once while the channel is set up (its
	// registration, the login follow-up, its map request): a client that
	// sends nothing is cut after it. 0 means 10 s.
	HandshakeTimeout time.Duration
	// Flows stores the flow batches nodes send (nil: they are
	// acknowledged and dropped).
	Flows *flowlog.Ingest
	// Access answers nodes' just-in-time access calls (nil: each is
	// answered AccessFailed, not enabled).
	Access *access.Service
	// PublicURL is the coordinator's URL as nodes reach it, for the
	// recording URL of sessions it records (empty: the reply's RecordURL
	// is the path alone, which the node resolves against its coordinator
	// URL).
	PublicURL string

	// connBuffer overrides the size of each channel's read and write
	// buffers (0: connBuffer; below 0: net/http's, as before they were
	// cut, for the benchmark's baseline).
	connBuffer int
}

// SilenceKeepAlives is how many keep-alives in a row a streaming node that
// answers keep-alives (protocol version 2 on) may leave unanswered: when
// the next is due and the node has sent nothing since, its channel is
// closed.
const SilenceKeepAlives = 3

// Server serves the control channel. Close ends every channel it runs.
type Server struct {
	cfg    Config
	log    *slog.Logger
	replay *noise.ReplayGuard
	ctx    context.Context
	cancel context.CancelFunc
	// mu orders channels arriving (wg.Add) against Close (closed, then
	// wg.Wait): a WaitGroup must not gain members while it is waited on.
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
	// access is cfg.Access as the channel uses it (nil when not set).
	access accessAPI
}

// New returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Key.IsZero() || cfg.Registry == nil || cfg.Engine == nil || cfg.Audit == nil {
		return nil, errors.New("control: Key, Registry, Engine and Audit are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 30 * time.Second
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.connBuffer == 0 {
		cfg.connBuffer = connBuffer
	}
	if cfg.Failures == nil {
		cfg.Failures = audit.NewFailures(cfg.Logger, 0)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, log: cfg.Logger, replay: noise.NewReplayGuard(0), ctx: ctx, cancel: cancel}
	if cfg.Access != nil {
		s.access = cfg.Access
	}
	return s, nil
}

// Close closes every control channel and waits for their goroutines.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}

// enter counts a channel in, unless the server is closing.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// Handler returns the HTTP handler serving KeyPath and ControlPath.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+KeyPath, s.serveKey)
	mux.HandleFunc("GET "+ControlPath, s.serveControl)
	return mux
}

func (s *Server) serveKey(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(KeyResponse{Key: s.cfg.Key.Public(), ProtocolVersion: wire.ProtocolVersion})
}

func (s *Server) serveControl(w http.ResponseWriter, r *http.Request) {
	if !s.enter() {
		http.Error(w, "coordinator shutting down", http.StatusServiceUnavailable)
		return
	}
	if s.cfg.connBuffer > 0 {
		w = smallBuffers{ResponseWriter: w, size: s.cfg.connBuffer}
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{Subprotocol}})
	if err != nil {
		s.wg.Done()
		s.log.Debug("control: websocket accept", "remote", r.RemoteAddr, "err", err)
		return
	}
	remote := r.RemoteAddr
	if s.cfg.connBuffer < 0 {
		// The benchmark's baseline: the channel on the handler's goroutine.
		defer s.wg.Done()
		s.serveChannel(ws, remote)
		return
	}
	// The handler returns, so net/http lets go of the connection's state
	// (its 4 KiB buffers, the request) and its goroutine's deep stack;
	// the channel runs on a goroutine of its own, counted in s.wg.
	go func() {
		defer s.wg.Done()
		s.serveChannel(ws, remote)
	}()
}

// serveChannel runs one accepted control channel until it ends.
func (s *Server) serveChannel(ws *websocket.Conn, remote string) {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	mc := noise.WebSocket(ws)
	defer mc.Close()
	hctx, hcancel := context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
	// noise.Server closes the transport when the handshake fails; hold that
	// close back until the failure is counted, so the count is complete by
	// the time the node sees the channel end. The caller is unknown, so a
	// failure is counted, never audited: anyone can cause any number.
	conn, err := noise.Server(hctx, closeLater{mc}, noise.ServerConfig{Key: s.cfg.Key, Replay: s.replay})
	hcancel()
	if err != nil {
		s.cfg.Failures.Record("control.handshake", remote, err.Error())
		_ = ws.Close(websocket.StatusPolicyViolation, "noise handshake failed")
		return
	}
	defer conn.Close()
	// Close the channel when the server closes.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	sess := &session{srv: s, conn: conn, remote: remote, access: make(chan struct{}, wire.MaxAccessCalls),
		ssh: &sshState{slots: make(chan struct{}, wire.MaxSSHCalls)}, log: s.log.With("machine", conn.Peer().ShortString(), "remote", remote)}
	// A client silent during set-up was counted by the watchdog.
	if err := sess.run(ctx); err != nil && !errors.Is(err, errSilent) {
		sess.log.Info("control channel closed", "err", err)
	}
}

// closeLater is a MessageConn whose Close does nothing: serveChannel closes
// the real one itself.
type closeLater struct{ noise.MessageConn }

func (closeLater) Close() error { return nil }

// errorFor turns a registration or session error into the message a node is
// sent before the channel closes.
func errorFor(err error) *wire.Error {
	var we *wire.Error
	if errors.As(err, &we) {
		return we
	}
	code := wire.CodeInternal
	msg := "the coordinator failed; try again later"
	switch {
	case errors.Is(err, auth.ErrUnknownKey), errors.Is(err, auth.ErrKeyExpired), errors.Is(err, auth.ErrKeyRevoked),
		errors.Is(err, auth.ErrKeyUsed), errors.Is(err, login.ErrNoLogin), errors.Is(err, registry.ErrNeedAuth),
		errors.Is(err, registry.ErrTagNotGranted), errors.Is(err, registry.ErrTagNotOwned), errors.Is(err, registry.ErrDeviceOwned), errors.Is(err, registry.ErrNodeKeyInUse), errors.Is(err, registry.ErrLoginFailed):
		code, msg = wire.CodeUnauthorized, err.Error()
	case errors.Is(err, login.ErrTooManyLogins), errors.Is(err, login.ErrProviderUnavailable):
		code, msg = wire.CodeBusy, err.Error()
	case errors.Is(err, registry.ErrBadRequest), errors.Is(err, errBadMessage):
		code, msg = wire.CodeBadRequest, err.Error()
	case errors.Is(err, errVersion):
		code, msg = wire.CodeVersion, err.Error()
	case errors.Is(err, store.ErrNotFound):
		code, msg = wire.CodeNodeRemoved, "this node is no longer registered: run warren up to join again"
	}
	return &wire.Error{Code: code, Message: msg}
}

var (
	errLoggedOut  = errors.New("node logged out")
	errBadMessage = errors.New("unexpected message")
	errVersion    = fmt.Errorf("protocol version not supported (this coordinator speaks %d to %d): upgrade warren", wire.MinProtocolVersion, wire.ProtocolVersion)
)
