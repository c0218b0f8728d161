// Package controlclient is the node's side of the control channel: it
// dials the coordinator's websocket, runs the Noise IK handshake pinning the
// coordinator's key, registers the node, and keeps a netmap current from
// the coordinator's full maps and deltas, reconnecting with backoff.
//
// Calls from other goroutines (SetEndpoints, SetPosture) only record and
// signal: the session goroutine owns the channel and does the writing, so
// a stalled coordinator never blocks the data plane's path-measuring loop
// or the posture collector.
//
// It holds the machine private key only to hand it to the Noise handshake;
// it must never send or log a private key, and it keeps the last netmap
// while the coordinator is unreachable.
package controlclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/noise"
	"github.com/warrenmesh/warren/internal/wire"
)

// Config configures a Client.
type Config struct {
	// URL is the coordinator's base URL, e.g. https://warren.example.com.
	URL string
	// ControlKey is the coordinator's pinned public key.
	ControlKey key.ControlPublic
	Machine    key.MachinePrivate
	NodeKey    key.NodePublic
	DiscoKey   key.DiscoPublic
	Hostname   string
	OS         string
	// AuthKey is a pre-auth key; sent until the node is registered.
	AuthKey string
	Tags    []string
	// AdvertiseRoutes is every route the node offers, sent with each map
	// request (see wire.MapRequest).
	AdvertiseRoutes []netip.Prefix
	// OnNetmap is called from Run's goroutine with every new netmap.
	OnNetmap func(*Netmap)
	// OnLoginURL is called when the coordinator wants the user to sign in
	// at a URL (a registration without a pre-auth key); the client then
	// waits for the sign-in. A reconnect starts a new login.
	OnLoginURL func(url string)
	// LoginTimeout bounds that wait; default 15 minutes.
	LoginTimeout time.Duration
	Logger       *slog.Logger
	// HTTPClient dials the websocket; nil means http.DefaultClient.
	HTTPClient *http.Client
	// MinBackoff and MaxBackoff bound the reconnect delay (defaults 1 s
	// and 30 s): each wait is drawn uniformly from [0, ceiling], the
	// ceiling being MinBackoff after a healthy channel and doubling up to
	// MaxBackoff while attempts fail (see backoff.go).
	MinBackoff, MaxBackoff time.Duration
	// ConnectTimeout bounds a connect, from the dial to the first netmap
	// (not counting the wait for an interactive sign-in); default 30 s. A
	// coordinator that takes the connection and then says nothing (a
	// frozen replica behind a balancer that has not noticed) is left
	// after this, and the next attempt follows the backoff.
	ConnectTimeout time.Duration
	// IdleTimeout closes a channel that carried nothing for this long (the
	// coordinator sends keep-alives, which the client answers); default 2
	// minutes.
	IdleTimeout time.Duration
	// Flows, if set, holds the flow records to send: while a channel is
	// up they go out in FlowBatch messages, and leave the spool when the
	// coordinator acknowledges them (see flows.go).
	Flows FlowSpool
}

// Client keeps a node's netmap current. Run drives it.
type Client struct {
	cfg Config
	log *slog.Logger

	// dial opens the message channel to the coordinator and returns it
	// with a function that drops it without a close handshake; New sets
	// the websocket dialer (tests an in-memory pipe).
	dial func(ctx context.Context) (noise.MessageConn, func(), error)
	// updated is signalled (never blocking) when SetEndpoints or
	// SetPosture records something to send; the running session's sender
	// waits on it.
	updated chan struct{}

	mu        sync.Mutex
	nm        *Netmap
	eps       []netip.AddrPort
	homeRelay int
	epsGen    uint64 // counts SetEndpoints calls; a session sends until it has sent the latest
	posture   postureState
	conn      *noise.Conn                  // current channel, nil when disconnected
	lost      chan struct{}                // closed when conn's session ends
	calls     callTable[*wire.AccessReply] // access calls in flight
	ssh       callTable[*wire.SSHReply]    // SSH calls in flight
	state     mapState
	sessions  int // control channels registered so far
}

// Sessions returns how many times the client has registered over a fresh
// control channel (1 after the first connect; more after reconnects).
func (c *Client) Sessions() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessions
}

// Connected reports whether a control channel is up and registered.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn != nil
}

// New returns a Client.
func New(cfg Config) (*Client, error) {
	switch {
	case cfg.URL == "":
		return nil, errors.New("controlclient: coordinator URL required")
	case cfg.ControlKey.IsZero():
		return nil, errors.New("controlclient: coordinator key required (get it with warren up's key fetch, or from the coordinator's /key URL)")
	case cfg.Machine.IsZero() || cfg.NodeKey.IsZero() || cfg.DiscoKey.IsZero():
		return nil, errors.New("controlclient: machine, node and disco keys required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(30*time.Second, cfg.MinBackoff)
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 2 * time.Minute
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 30 * time.Second
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	c := &Client{cfg: cfg, log: cfg.Logger, updated: make(chan struct{}, 1),
		calls: newCallTable[*wire.AccessReply]("access", wire.MaxAccessCalls), ssh: newCallTable[*wire.SSHReply]("ssh", wire.MaxSSHCalls)}
	c.dial = c.dialWebSocket
	return c, nil
}

// dialWebSocket opens the control websocket.
func (c *Client) dialWebSocket(ctx context.Context) (noise.MessageConn, func(), error) {
	ws, _, err := websocket.Dial(ctx, c.cfg.URL+"/control", &websocket.DialOptions{
		HTTPClient: c.cfg.HTTPClient, Subprotocols: []string{"warren-control-v1"},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("dial coordinator: %w", err)
	}
	return noise.WebSocket(ws), func() { _ = ws.CloseNow() }, nil
}

// Netmap returns the latest netmap, or nil before the first one.
func (c *Client) Netmap() *Netmap {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nm
}

// SetEndpoints records the node's endpoints and home relay and signals
// the running session, which sends the latest ones; it never blocks on
// the network. Only the latest call counts: a session sends what was
// recorded last, with its map request or right after it, and a session
// that starts later sends it with its own map request.
func (c *Client) SetEndpoints(eps []netip.AddrPort, homeRelay int) {
	c.mu.Lock()
	c.eps, c.homeRelay = append([]netip.AddrPort(nil), eps...), homeRelay
	c.epsGen++
	c.mu.Unlock()
	c.signal()
}

// signal wakes the running session's sender, never blocking.
func (c *Client) signal() {
	select {
	case c.updated <- struct{}{}:
	default: // a signal is already pending; it covers this call too
	}
}

// sendUpdates runs beside one session's reader from its map request
// (which carried the endpoints of generation sent and the posture of
// sentPosture) until ctx ends: it sends an UpdateRequest whenever newer
// endpoints or a posture report or heartbeat were recorded. A failed
// write closes conn, which ends the session.
func (c *Client) sendUpdates(ctx context.Context, conn *noise.Conn, sent uint64, sentPosture postureSent) {
	for {
		c.mu.Lock()
		eps, relay, gen := c.eps, c.homeRelay, c.epsGen
		report, nextPosture := c.posture.next(sentPosture)
		c.mu.Unlock()
		// The coordinator takes every update's endpoints and home relay
		// as the current ones, so one sent for the posture carries them.
		if gen != sent || report != nil {
			up := &wire.UpdateRequest{Endpoints: eps, HomeRelay: relay, Posture: report}
			if err := wire.WriteMessage(conn, up); err != nil {
				if ctx.Err() == nil {
					c.log.Warn("send update", "err", err)
				}
				_ = conn.Close()
				return
			}
			sent, sentPosture = gen, nextPosture
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-c.updated:
		}
	}
}

// ErrNotConnected is returned by Logout when no control channel is up.
var ErrNotConnected = errors.New("controlclient: not connected to the coordinator")

// Logout asks the coordinator to expire this node. The coordinator answers
// by closing the channel with code logged_out, which ends Run.
func (c *Client) Logout() error {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn == nil {
		return ErrNotConnected
	}
	return wire.WriteMessage(conn, &wire.LogoutRequest{})
}

// PermanentError is a refusal from the coordinator that retrying will not
// fix (bad key, unsupported version, node deleted). Run returns it.
type PermanentError struct{ Err *wire.Error }

func (e *PermanentError) Error() string { return "coordinator refused: " + e.Err.Error() }

// Unwrap returns the coordinator's error.
func (e *PermanentError) Unwrap() error { return e.Err }

// Run connects and follows the netmap until ctx ends or the coordinator
// refuses the node for good; it reconnects with backoff after any other
// failure, keeping the last netmap meanwhile.
func (c *Client) Run(ctx context.Context) error {
	rnd := newRand() // owned by this goroutine
	ceil := c.cfg.MinBackoff
	for {
		start := time.Now()
		registered, err := c.session(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var perm *PermanentError
		if errors.As(err, &perm) {
			if perm.Err.Code == wire.CodeLoggedOut {
				c.log.Info("logged out")
			} else {
				c.log.Error("coordinator refused this node", "code", perm.Err.Code, "err", perm.Err.Message)
			}
			return perm
		}
		var wait time.Duration
		healthy := healthySession(registered, time.Since(start), c.cfg.MinBackoff)
		wait, ceil = nextBackoff(rnd, ceil, healthy, c.cfg.MinBackoff, c.cfg.MaxBackoff)
		c.log.Warn("control channel lost, reconnecting", "err", err, "in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// session runs one control channel from dial to failure. It reports
// whether the channel got as far as a netmap (for the backoff).
func (c *Client) session(ctx context.Context) (registered bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var late atomic.Bool
	connecting := time.AfterFunc(c.cfg.ConnectTimeout, func() { late.Store(true); cancel() })
	defer connecting.Stop()
	err = c.run(ctx, cancel, connecting, &registered)
	if late.Load() && err != nil {
		err = fmt.Errorf("controlclient: no netmap within %v of connecting (%w)", c.cfg.ConnectTimeout, err)
	}
	return registered, err
}

// run is session's body: it stops connecting when the first netmap
// arrives (or an interactive sign-in begins), and sets *registered then.
func (c *Client) run(ctx context.Context, cancel context.CancelFunc, connecting *time.Timer, registered *bool) error {
	mc, closeNow, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer mc.Close()
	conn, err := noise.Client(ctx, mc, noise.ClientConfig{Machine: c.cfg.Machine, Coordinator: c.cfg.ControlKey})
	if err != nil {
		return err
	}
	defer conn.Close()
	closeOnEnd := func() { _ = conn.Close() }
	stop := context.AfterFunc(ctx, closeOnEnd)
	defer func() { stop() }()
	// A watchdog closes the channel when nothing arrives for IdleTimeout.
	idle := time.AfterFunc(c.cfg.IdleTimeout, func() { _ = conn.Close() })
	defer idle.Stop()

	if err := wire.WriteMessage(conn, &wire.RegisterRequest{
		Version: wire.ProtocolVersion, NodeKey: c.cfg.NodeKey, DiscoKey: c.cfg.DiscoKey,
		Hostname: c.cfg.Hostname, OS: c.cfg.OS, AuthKey: c.cfg.AuthKey, Tags: c.cfg.Tags,
	}); err != nil {
		return fmt.Errorf("send registration: %w", err)
	}
	m, err := c.read(conn, idle)
	if err != nil {
		return err
	}
	reg, ok := m.(*wire.RegisterResponse)
	if ok && reg.AuthURL != "" {
		connecting.Stop() // the sign-in has a timeout of its own
		// While the coordinator waits for the sign-in it reads nothing, so
		// a close handshake would wait out its timeout: a node that stops
		// meanwhile drops the connection at once instead.
		stop()
		stop = context.AfterFunc(ctx, closeNow)
		reg, err = c.login(ctx, conn, idle, reg.AuthURL)
		stop()
		stop = context.AfterFunc(ctx, closeOnEnd)
		if err != nil {
			return err
		}
	}
	if !ok || !reg.Authorized {
		return fmt.Errorf("controlclient: unexpected reply to registration: %v", m.WireType())
	}
	c.log.Info("registered", "name", reg.Self.Name, "addresses", reg.Self.Addresses)

	c.mu.Lock()
	eps, relay, gen := c.eps, c.homeRelay, c.epsGen
	// Every stream starts with the full posture report (a coordinator
	// restarted meanwhile may hold none).
	report, sentPosture := c.posture.full()
	c.mu.Unlock()
	if err := wire.WriteMessage(conn, &wire.MapRequest{Stream: true, Endpoints: eps, HomeRelay: relay, AdvertiseRoutes: c.cfg.AdvertiseRoutes, Posture: report}); err != nil {
		return fmt.Errorf("send map request: %w", err)
	}
	lost := make(chan struct{})
	c.mu.Lock()
	c.conn, c.lost = conn, lost
	c.sessions++
	c.state = mapState{} // the coordinator starts every stream with a full map
	c.mu.Unlock()
	// Endpoints and posture recorded since (even between reading them
	// above and now) go out from here on, never from their setter.
	var sender sync.WaitGroup
	sender.Add(1)
	go func() { defer sender.Done(); c.sendUpdates(ctx, conn, gen, sentPosture) }()
	var flows *flowSender
	if c.cfg.Flows != nil {
		flows = newFlowSender(c)
		sender.Add(1)
		go func() { defer sender.Done(); flows.run(ctx, conn) }()
	}
	defer func() {
		cancel()
		_ = conn.Close() // unblocks a write to a stalled channel
		sender.Wait()
		c.mu.Lock()
		c.conn, c.lost = nil, nil
		c.mu.Unlock()
		close(lost) // access and SSH calls in flight on this channel fail

	}()
	for {
		m, err := c.read(conn, idle)
		if err != nil {
			return err
		}
		if _, ok := m.(*wire.KeepAlive); ok {
			// Answer, so the coordinator knows this node is alive (it
			// closes channels that stay silent; protocol version 2).
			if err := wire.WriteMessage(conn, &wire.KeepAlive{}); err != nil {
				return fmt.Errorf("answer keep-alive: %w", err)
			}
			continue
		}
		if r, ok := m.(*wire.AccessReply); ok {
			deliver(c, &c.calls, r.ID, r)
			continue
		}
		if r, ok := m.(*wire.SSHReply); ok {
			deliver(c, &c.ssh, r.ID, r)
			continue
		}
		if ack, ok := m.(*wire.FlowAck); ok {
			if flows != nil {
				flows.acked(ack.Seq)
			}
			continue
		}
		resp, ok := m.(*wire.MapResponse)
		if !ok {
			continue
		}
		c.mu.Lock()
		err = c.state.apply(resp)
		var nm *Netmap
		if err == nil {
			nm = c.state.snapshot()
			c.nm = nm
		}
		c.mu.Unlock()
		if err != nil {
			return err
		}
		if !*registered {
			connecting.Stop()
			*registered = true
		}
		if c.cfg.OnNetmap != nil {
			c.cfg.OnNetmap(nm)
		}
	}
}

// read reads one message from the coordinator, resets the idle watchdog,
// and turns a wire.Error into a Go error.
func (c *Client) read(conn *noise.Conn, idle *time.Timer) (wire.Message, error) {
	m, err := wire.ReadMessage(conn, wire.MaxCoordinatorMessage)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read from coordinator: %w", err)
	}
	idle.Reset(c.cfg.IdleTimeout)
	if e, ok := m.(*wire.Error); ok {
		if e.Code == wire.CodeInternal || e.Code == wire.CodeBusy {
			return nil, e
		}
		return nil, &PermanentError{Err: e}
	}
	return m, nil
}

// login shows the user the sign-in URL and waits, without the idle
// watchdog (the coordinator sends nothing meanwhile), for the answer to
// the follow-up registration.
func (c *Client) login(ctx context.Context, conn *noise.Conn, idle *time.Timer, url string) (*wire.RegisterResponse, error) {
	c.log.Info("sign in to finish joining", "url", url)
	if c.cfg.OnLoginURL != nil {
		c.cfg.OnLoginURL(url)
	}
	if err := wire.WriteMessage(conn, &wire.RegisterRequest{
		Version: wire.ProtocolVersion, NodeKey: c.cfg.NodeKey, DiscoKey: c.cfg.DiscoKey,
		Hostname: c.cfg.Hostname, OS: c.cfg.OS, Tags: c.cfg.Tags, Followup: url,
	}); err != nil {
		return nil, fmt.Errorf("send login follow-up: %w", err)
	}
	idle.Stop()
	timeout := c.cfg.LoginTimeout
	if timeout <= 0 {
		timeout = 15 * time.Minute
	}
	watchdog := time.AfterFunc(timeout, func() { _ = conn.Close() })
	defer watchdog.Stop()
	m, err := c.read(conn, idle)
	if err != nil {
		return nil, err
	}
	reg, ok := m.(*wire.RegisterResponse)
	if !ok {
		return nil, fmt.Errorf("controlclient: unexpected reply to the login follow-up: %v", m.WireType())
	}
	return reg, nil
}

// FetchKey asks the coordinator at url for its public key. Use it once, at
// first join (trust on first use), then pin the key; or compare it with the
// key the coordinator's admin printed.
func FetchKey(ctx context.Context, client *http.Client, url string) (key.ControlPublic, error) {
	var kr struct {
		Key key.ControlPublic `json:"key"`
	}
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(url, "/")+"/key", nil)
	if err != nil {
		return kr.Key, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return kr.Key, fmt.Errorf("fetch coordinator key: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return kr.Key, fmt.Errorf("fetch coordinator key: %s", resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&kr); err != nil {
		return kr.Key, fmt.Errorf("fetch coordinator key: %w", err)
	}
	return kr.Key, nil
}
