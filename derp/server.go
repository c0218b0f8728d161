package derp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmesh/warren/internal/key"
)

// Admitter decides whether a node key may use the relay (the coordinator
// lists admitted keys). An error means "could not decide": a new
// connection is refused, a connected client stays.
type Admitter func(ctx context.Context, k key.NodePublic) (bool, error)

// Defaults for the zero values of ServerConfig.
const (
	DefaultRevalidateEvery = time.Minute
	DefaultRateBytesPerSec = 125_000_000 // 1 Gbit/s
	DefaultRateBurst       = 4 << 20
	DefaultQueueLen        = 256
	DefaultQueueBytes      = 4 << 20
	DefaultKeepAliveEvery  = 30 * time.Second

	// FrameOverhead is what the rate limiter charges per frame on top of
	// its length, so that floods of tiny frames are limited too.
	FrameOverhead = 64

	handshakeTimeout = 5 * time.Second
	goodbyeTimeout   = time.Second
	ctrlQueueLen     = 16
	discoQueueLen    = 16 // disco frames per client; the oldest is dropped when full
	maxDiscoPerBatch = 16 // disco frames before data gets a turn in one corked write
	maxBatch         = 64 // frames per corked write
	revalidateConc   = 16
	peerGoneEvery    = time.Second // at most one PeerGone per (src, dst) per this
	maxGoneEntries   = 1024
)

// ServerConfig configures a relay Server. The zero value works (for tests:
// it admits everyone).
type ServerConfig struct {
	// PrivateKey is the relay's key; zero: generate one.
	PrivateKey key.RelayPrivate
	// Admit decides which node keys may connect; nil admits everyone
	// (tests and development only; NewServer logs a warning).
	Admit Admitter
	// RevalidateEvery is how often Admit is asked again for every
	// connected client; denied clients are disconnected (0: 1 minute).
	RevalidateEvery time.Duration
	// RateBytesPerSec limits what each client may send (0: 1 Gbit/s;
	// < 0: unlimited). Frames over the limit are dropped and counted.
	RateBytesPerSec int
	// RateBurst is the limiter's burst in bytes (0: 4 MiB).
	RateBurst int
	// QueueLen is the length of each client's outbound frame queue (0:
	// 256). When it is full, frames for that client are dropped and
	// counted; no other client ever waits.
	QueueLen int
	// QueueBytes caps the bytes in each client's outbound queue (0: 4 MiB).
	QueueBytes int
	// KeepAliveEvery is how often the server pings each client (0: 30 s).
	// The pings keep idle connections open through proxies; a client that
	// has sent nothing for two of these periods is disconnected.
	KeepAliveEvery time.Duration
	// Logger receives the relay's logs (nil: slog.Default()).
	Logger *slog.Logger
}

// Stats are counters of a Server since it started.
type Stats struct {
	Clients            int    // connected now
	FramesForwarded    uint64 // packets written to their destination
	BytesForwarded     uint64 // packet bytes (without frame headers) written
	DroppedQueueFull   uint64 // packets dropped: destination queue full
	DroppedUnknownDst  uint64 // packets dropped: destination not connected
	DroppedRateLimited uint64 // packets dropped: sender over its rate limit
	DroppedDiscoOldest uint64 // disco packets dropped: the oldest, to make room in a full disco queue
	HandshakeFailures  uint64 // connections that failed the handshake (bad proof, timeout, garbage)
	Refused            uint64 // proven keys refused: not admitted, or the check failed
	AdmitErrors        uint64 // of Refused: the admission check itself failed
	Admitted           uint64 // connections that passed the handshake and admission
	Replaced           uint64 // connections replaced by a newer one with the same key
	Kicked             uint64 // clients disconnected by Disconnect, revalidation or for silence
	ProtocolErrors     uint64 // admitted clients disconnected for a malformed or unexpected frame
}

type counters struct {
	framesForwarded, bytesForwarded                          atomic.Uint64
	droppedQueueFull, droppedUnknownDst, droppedRateLimited  atomic.Uint64
	droppedDiscoOldest                                       atomic.Uint64
	handshakeFailures, refused, replaced, kicked, protoError atomic.Uint64
	admitErrors, admitted                                    atomic.Uint64
}

// Server is a DERP relay. It serves websocket clients through ServeHTTP.
type Server struct {
	priv key.RelayPrivate
	pub  key.RelayPublic
	cfg  ServerConfig // defaults filled in
	log  *slog.Logger

	ctx    context.Context // ends with Close; bounds handshakes and Admit calls
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine and handler the server runs

	handshakeTimeout time.Duration // tests shorten it
	singleQueue      bool          // benchmarks: disco shares the data queue (the old behaviour)

	mu      sync.RWMutex
	clients map[key.NodePublic]*sclient
	kicked  map[key.NodePublic]time.Time // recent Disconnects, for handshakes in flight
	closed  bool

	n counters
}

// NewServer returns a relay server; it starts its keepalive and
// revalidation loops, which Close ends.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.PrivateKey.IsZero() {
		cfg.PrivateKey = key.NewRelay()
	}
	if cfg.RevalidateEvery < 0 || cfg.KeepAliveEvery < 0 || cfg.RateBurst < 0 || cfg.QueueLen < 0 || cfg.QueueBytes < 0 {
		return nil, errors.New("derp: negative durations, bursts or queue sizes make no sense")
	}
	setDefault(&cfg.RevalidateEvery, DefaultRevalidateEvery)
	setDefault(&cfg.RateBytesPerSec, DefaultRateBytesPerSec)
	setDefault(&cfg.RateBurst, DefaultRateBurst)
	setDefault(&cfg.QueueLen, DefaultQueueLen)
	setDefault(&cfg.QueueBytes, DefaultQueueBytes)
	setDefault(&cfg.KeepAliveEvery, DefaultKeepAliveEvery)
	if cfg.RateBytesPerSec > 0 && cfg.RateBurst < maxFrameSize+FrameOverhead {
		return nil, fmt.Errorf("derp: RateBurst %d is below one maximal frame (%d bytes)", cfg.RateBurst, maxFrameSize+FrameOverhead)
	}
	if cfg.QueueBytes < maxFrameSize {
		return nil, fmt.Errorf("derp: QueueBytes %d is below one maximal frame (%d bytes)", cfg.QueueBytes, maxFrameSize)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{
		priv:    cfg.PrivateKey,
		pub:     cfg.PrivateKey.Public(),
		cfg:     cfg,
		log:     cfg.Logger.With("relay", cfg.PrivateKey.Public().ShortString()),
		clients: make(map[key.NodePublic]*sclient),
		kicked:  make(map[key.NodePublic]time.Time),

		handshakeTimeout: handshakeTimeout,
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if cfg.Admit == nil {
		s.log.Warn("relay admits every node key: no admission check configured (tests and development only)")
	}
	s.wg.Add(2)
	go s.keepAliveLoop()
	go s.revalidateLoop()
	return s, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// PublicKey returns the relay's public key.
func (s *Server) PublicKey() key.RelayPublic { return s.pub }

// ServeHTTP serves the relay. A websocket upgrade request (any path)
// becomes a relay client; a GET or HEAD for a path ending in "/probe" is
// answered 204 No Content at once (a latency probe for nodes whose UDP is
// blocked); anything else gets 426 Upgrade Required with a short
// explanation.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case headerHasToken(r.Header, "Upgrade", "websocket"):
		s.serveClient(w, r)
	case (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.HasSuffix(r.URL.Path, "/probe"):
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Upgrade", "websocket")
		http.Error(w, "This is a Warren DERP relay: Warren nodes connect here over a websocket "+
			"(subprotocol "+Subprotocol+"). There is nothing to see with a browser.", http.StatusUpgradeRequired)
	}
}

// headerHasToken reports whether the comma-separated header name holds
// token, case-insensitively.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// enter registers a handler goroutine, unless the server is closed.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// register makes c the client for its key, replacing (and disconnecting)
// an older connection with the same key. A key disconnected since its
// handshake started is refused: its admission answer may predate the
// Disconnect.
func (s *Server) register(c *sclient, started time.Time) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("relay shutting down")
	}
	if t, ok := s.kicked[c.key]; ok && !t.Before(started) {
		s.mu.Unlock()
		return errors.New("node key removed")
	}
	old := s.clients[c.key]
	s.clients[c.key] = c
	s.mu.Unlock()
	if old != nil {
		s.n.replaced.Add(1)
		old.kill("replaced by a newer connection with the same node key")
	}
	return nil
}

// unregister removes c, if it is still the client for its key.
func (s *Server) unregister(c *sclient) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clients[c.key] != c {
		return false
	}
	delete(s.clients, c.key)
	return true
}

func (s *Server) lookup(k key.NodePublic) *sclient {
	s.mu.RLock()
	c := s.clients[k]
	s.mu.RUnlock()
	return c
}

func (s *Server) snapshot() []*sclient {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*sclient, 0, len(s.clients))
	for _, c := range s.clients {
		out = append(out, c)
	}
	return out
}

// kick disconnects c for reason, if it is still connected.
func (s *Server) kick(c *sclient, reason string) {
	if s.unregister(c) {
		s.n.kicked.Add(1)
		s.log.Info("relay client disconnected", "node", c.key, "reason", reason)
	}
	c.kill(reason)
}

// Disconnect disconnects the client with key k now, if it is connected
// (offboarding: the coordinator deleted the node). It does not stop the
// key from connecting again; the Admitter does that.
func (s *Server) Disconnect(k key.NodePublic) {
	now := time.Now()
	s.mu.Lock()
	for k, t := range s.kicked {
		if now.Sub(t) > 2*s.handshakeTimeout {
			delete(s.kicked, k)
		}
	}
	s.kicked[k] = now
	c := s.clients[k]
	s.mu.Unlock()
	if c != nil {
		s.kick(c, "disconnected by the relay: node key removed")
	}
}

// Revalidate asks Admit again for every connected client now and
// disconnects those it denies. Clients whose check fails with an error
// stay connected (the coordinator may be briefly down). It returns when
// every check is done or ctx ends.
func (s *Server) Revalidate(ctx context.Context) {
	if s.cfg.Admit == nil {
		return
	}
	sem := make(chan struct{}, revalidateConc)
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, c := range s.snapshot() {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ok, err := s.cfg.Admit(ctx, c.key)
			switch {
			case err != nil:
				s.log.Warn("relay could not revalidate a client; it stays connected", "node", c.key, "err", err)
			case !ok:
				s.kick(c, "node key no longer admitted by the coordinator")
			}
		}()
	}
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	s.mu.RLock()
	n := len(s.clients)
	s.mu.RUnlock()
	return Stats{
		Clients:            n,
		FramesForwarded:    s.n.framesForwarded.Load(),
		BytesForwarded:     s.n.bytesForwarded.Load(),
		DroppedQueueFull:   s.n.droppedQueueFull.Load(),
		DroppedUnknownDst:  s.n.droppedUnknownDst.Load(),
		DroppedRateLimited: s.n.droppedRateLimited.Load(),
		DroppedDiscoOldest: s.n.droppedDiscoOldest.Load(),
		HandshakeFailures:  s.n.handshakeFailures.Load(),
		Refused:            s.n.refused.Load(),
		AdmitErrors:        s.n.admitErrors.Load(),
		Admitted:           s.n.admitted.Load(),
		Replaced:           s.n.replaced.Load(),
		Kicked:             s.n.kicked.Load(),
		ProtocolErrors:     s.n.protoError.Load(),
	}
}

// QueuedBytes returns the bytes waiting in every client's outbound data
// queue now.
func (s *Server) QueuedBytes() int64 {
	var n int64
	for _, c := range s.snapshot() {
		n += c.queued.Load()
	}
	return n
}

// Close disconnects every client, refuses new ones, and returns once every
// goroutine the server started has ended. Calling it again is a no-op.
func (s *Server) Close() error {
	s.mu.Lock()
	wasClosed := s.closed
	s.closed = true
	clients := make([]*sclient, 0, len(s.clients))
	for _, c := range s.clients {
		clients = append(clients, c)
	}
	clear(s.clients)
	s.mu.Unlock()
	if !wasClosed {
		s.cancel()
		for _, c := range clients {
			c.kill("relay shutting down")
		}
	}
	s.wg.Wait()
	return nil
}

// keepAliveLoop pings every client each KeepAliveEvery, and disconnects
// clients that sent nothing (not even a pong) for two periods.
func (s *Server) keepAliveLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.KeepAliveEvery)
	defer t.Stop()
	var seq uint64
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		for _, c := range s.snapshot() {
			if c.heard.Swap(false) {
				c.missed = 0
			} else if c.missed++; c.missed >= 2 {
				s.kick(c, "client silent for two keepalive periods")
				continue
			}
			seq++
			c.sendCtrl(pingFrame(framePing, seq))
		}
	}
}

func (s *Server) revalidateLoop() {
	defer s.wg.Done()
	if s.cfg.Admit == nil {
		return
	}
	t := time.NewTicker(s.cfg.RevalidateEvery)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.Revalidate(s.ctx)
		}
	}
}

func pingFrame(typ frameType, seq uint64) []byte {
	f := frame{typ: typ}
	for i := range f.ping {
		f.ping[i] = byte(seq >> (8 * i))
	}
	b, _ := appendFrame(make([]byte, 0, 1+pingLen), &f)
	return b
}
