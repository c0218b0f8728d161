package derp

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/warrenmesh/warren/internal/key"
)

// Message is what Client.Recv returns: a Packet or a PeerGone.
type Message interface{ isMessage() }

// Packet is a packet another node sent to this client through the relay.
type Packet struct {
	Src  key.NodePublic // the sender, as proven to the relay
	Data []byte         // owned by the receiver
}

// PeerGone says that a destination this client sent to is not connected
// to the relay. The relay sends at most about one per second per
// destination.
type PeerGone struct {
	Key    key.NodePublic
	Reason PeerGoneReason
}

func (Packet) isMessage()   {}
func (PeerGone) isMessage() {}

// PeerGoneReason says why a peer is gone.
type PeerGoneReason byte

// Reasons in PeerGone. Clients must accept reasons they do not know.
const (
	// PeerGoneNotHere: the destination is not connected to this relay.
	PeerGoneNotHere PeerGoneReason = 1
)

// String names the reason.
func (r PeerGoneReason) String() string {
	switch r {
	case PeerGoneNotHere:
		return "not connected to this relay"
	}
	return fmt.Sprintf("PeerGoneReason(%d)", byte(r))
}

// ServerError is the reason the relay gave, in an Error frame, for refusing
// a handshake (Dial) or for disconnecting a client (Recv, Send).
type ServerError struct {
	Reason    string
	Handshake bool // the relay refused the handshake
}

// Error says that the relay refused or disconnected, and why.
func (e *ServerError) Error() string {
	if e.Handshake {
		return "relay refused node key: " + e.Reason
	}
	return "relay disconnected this client: " + e.Reason
}

// ErrClosed is returned by a Client's methods after Close.
var ErrClosed = errors.New("derp: client closed")

// ClientOptions are Dial's optional settings.
type ClientOptions struct {
	Logger     *slog.Logger // nil: slog.Default()
	HTTPClient *http.Client // nil: http.DefaultClient; e.g. for TLS roots
}

const (
	dialHandshakeTimeout = 10 * time.Second
	recvQueueLen         = 32
)

// Client is a connection to a relay, authenticated as one node key. Send
// and Ping are safe for concurrent use; Recv is for one goroutine.
type Client struct {
	conn   *websocket.Conn
	pub    key.NodePublic
	server key.RelayPublic
	log    *slog.Logger

	recv      chan Message
	ctx       context.Context // ends with the connection
	cancel    context.CancelFunc
	done      chan struct{} // the reader has returned
	closeOnce sync.Once

	mu          sync.Mutex
	err         error  // why the connection ended; first one wins
	serverError string // text of the last Error frame
	pings       map[[pingLen]byte]chan struct{}

	idle        *time.Timer // closes the connection if the relay goes silent
	idleTimeout time.Duration
}

// Dial connects to the relay at rawURL (http, https, ws or wss), proves
// possession of nodeKey, and returns once the relay admitted it. A refusal
// is a *ServerError saying why, e.g. "relay refused node key: not admitted
// by the coordinator". ctx bounds the dial and handshake only (10 s if it
// has no deadline).
func Dial(ctx context.Context, rawURL string, nodeKey key.NodePrivate, opts ClientOptions) (*Client, error) {
	if nodeKey.IsZero() {
		return nil, errors.New("derp: dial: zero node key")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("derp: relay URL %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "http", "https", "ws", "wss":
	default:
		return nil, fmt.Errorf("derp: relay URL %q: scheme must be http, https, ws or wss", rawURL)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, dialHandshakeTimeout)
		defer cancel()
	}
	conn, resp, err := websocket.Dial(ctx, rawURL, &websocket.DialOptions{
		HTTPClient:      opts.HTTPClient,
		Subprotocols:    []string{Subprotocol},
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			body := ""
			if resp.Body != nil {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
				body = strings.TrimSpace(string(b))
			}
			return nil, fmt.Errorf("derp: dial relay %s: HTTP %s: %s (is this URL a Warren relay?)", rawURL, resp.Status, body)
		}
		return nil, fmt.Errorf("derp: dial relay %s: %w", rawURL, err)
	}
	if conn.Subprotocol() != Subprotocol {
		conn.CloseNow()
		return nil, fmt.Errorf("derp: %s did not agree to the websocket subprotocol %s; it is not a Warren relay, or an incompatible one", rawURL, Subprotocol)
	}
	server, keepAlive, err := clientHandshake(ctx, conn, nodeKey)
	if err != nil {
		conn.CloseNow()
		var se *ServerError
		if errors.As(err, &se) {
			return nil, se
		}
		return nil, fmt.Errorf("derp: handshake with relay %s: %w", rawURL, err)
	}
	conn.SetReadLimit(maxFrameSize)
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	c := &Client{
		conn:   conn,
		pub:    nodeKey.Public(),
		server: server,
		log:    log,
		recv:   make(chan Message, recvQueueLen),
		done:   make(chan struct{}),
		pings:  make(map[[pingLen]byte]chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if keepAlive > 0 {
		c.idleTimeout = 3*keepAlive + keepAlive/2
		c.idle = time.AfterFunc(c.idleTimeout, func() {
			c.fail(fmt.Errorf("derp: relay silent for %v; connection presumed dead", c.idleTimeout))
		})
	}
	go c.readLoop()
	return c, nil
}

// clientHandshake answers the relay's challenge and checks its answer.
func clientHandshake(ctx context.Context, conn *websocket.Conn, nodeKey key.NodePrivate) (key.RelayPublic, time.Duration, error) {
	conn.SetReadLimit(maxHandshakeFrame)
	buf := make([]byte, maxHandshakeFrame+1)
	var hello frame
	if err := readHandshakeFrame(ctx, conn, buf, &hello, frameServerHello); err != nil {
		return key.RelayPublic{}, 0, err
	}
	server := key.PublicFromRaw[key.RelayKind](hello.key)
	ch, err := sealClientHello(nodeKey, &hello)
	if err != nil {
		return server, 0, err
	}
	if err := writeFrame(ctx, conn, &ch); err != nil {
		return server, 0, fmt.Errorf("send hello: %w", err)
	}
	var reply frame
	if err := readHandshakeFrame(ctx, conn, buf, &reply, frameServerInfo); err != nil {
		return server, 0, err
	}
	info, err := openServerInfo(nodeKey, server, &ch.nonce, &reply)
	if err != nil {
		return server, 0, err
	}
	return server, time.Duration(info.KeepAliveMillis) * time.Millisecond, nil
}

// readHandshakeFrame reads one frame of type want, or the Error frame the
// relay sends instead.
func readHandshakeFrame(ctx context.Context, conn *websocket.Conn, buf []byte, f *frame, want frameType) error {
	b, err := readMessage(ctx, conn, buf)
	if err != nil {
		return fmt.Errorf("read %v: %w", want, err)
	}
	if err := decodeFrame(b, f); err != nil {
		return fmt.Errorf("read %v: %w", want, err)
	}
	switch f.typ {
	case want:
		return nil
	case frameError:
		return &ServerError{Reason: string(f.data), Handshake: true}
	}
	return fmt.Errorf("relay sent %v, want %v", f.typ, want)
}

// ServerKey returns the relay's public key, as proven in the handshake.
func (c *Client) ServerKey() key.RelayPublic { return c.server }

// PublicKey returns the node key this client is connected as.
func (c *Client) PublicKey() key.NodePublic { return c.pub }

// Send sends pkt to the node dst through the relay. It returns once the
// frame is written to the connection, not when it is delivered; the relay
// drops what it cannot deliver (and answers PeerGone if dst is not
// connected). If ctx ends while the frame is being written the connection
// is closed, since a half-written frame cannot be taken back.
func (c *Client) Send(ctx context.Context, dst key.NodePublic, pkt []byte) error {
	if len(pkt) > MaxPacketSize {
		return fmt.Errorf("derp: send: packet of %d bytes is over the %d-byte limit", len(pkt), MaxPacketSize)
	}
	bp := sendPool.Get().(*[]byte)
	b := appendPacketFrame((*bp)[:0], frameSendPacket, dst.Raw(), pkt)
	err := c.conn.Write(ctx, websocket.MessageBinary, b)
	*bp = b[:0]
	sendPool.Put(bp)
	if err != nil {
		return c.connErr("send", err)
	}
	return nil
}

// sendPool holds send buffers; most hold one WireGuard-sized frame.
var sendPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 2048)
	return &b
}}

// Recv returns the next Packet or PeerGone from the relay. It returns an
// error once the connection has ended (a *ServerError if the relay said
// why, ErrClosed after Close) or when ctx ends; ending ctx does not close
// the connection.
func (c *Client) Recv(ctx context.Context) (Message, error) {
	select {
	case m := <-c.recv:
		return m, nil
	default:
	}
	select {
	case m := <-c.recv:
		return m, nil
	case <-c.done:
		select {
		case m := <-c.recv:
			return m, nil
		default:
		}
		return nil, c.Err()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Ping sends a Ping frame and waits for the relay's Pong; it returns the
// round-trip time. Use it for liveness and to measure the relay's latency.
func (c *Client) Ping(ctx context.Context) (time.Duration, error) {
	var data [pingLen]byte
	if _, err := rand.Read(data[:]); err != nil {
		return 0, fmt.Errorf("derp: ping: %w", err)
	}
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	c.pings[data] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pings, data)
		c.mu.Unlock()
	}()
	start := time.Now()
	f := frame{typ: framePing, ping: data}
	if err := writeFrame(ctx, c.conn, &f); err != nil {
		return 0, c.connErr("ping", err)
	}
	select {
	case <-ch:
		return time.Since(start), nil
	case <-c.done:
		return 0, c.Err()
	case <-ctx.Done():
		return 0, fmt.Errorf("derp: ping: %w", ctx.Err())
	}
}

// Err returns why the connection ended, or nil while it is up.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Done is closed when the connection has ended; Err then says why.
func (c *Client) Done() <-chan struct{} { return c.done }

// Close closes the connection and waits for the client's goroutine.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.fail(ErrClosed)
	})
	<-c.done
	return nil
}

// fail ends the connection with err (unless it already ended).
func (c *Client) fail(err error) {
	c.mu.Lock()
	first := c.err == nil
	if first {
		c.err = err
	}
	c.mu.Unlock()
	if first && err != ErrClosed {
		c.log.Debug("derp: connection to relay ended", "relay", c.server.ShortString(), "err", err)
	}
	c.cancel()
	c.conn.CloseNow()
}

// connErr wraps a write error: the recorded reason if the connection
// ended, the write error otherwise.
func (c *Client) connErr(op string, err error) error {
	select {
	case <-c.done:
		return c.Err()
	default:
	}
	return fmt.Errorf("derp: %s: %w", op, err)
}

// readLoop reads frames until the connection ends, delivering packets and
// peer-gone notices to Recv and answering pings.
func (c *Client) readLoop() {
	defer close(c.done)
	if c.idle != nil {
		defer c.idle.Stop()
	}
	var f frame
	for {
		typ, r, err := c.conn.Reader(context.Background())
		if err != nil {
			c.fail(c.endReason(err))
			return
		}
		if c.idle != nil {
			c.idle.Reset(c.idleTimeout)
		}
		if typ != websocket.MessageBinary {
			c.fail(errors.New("derp: relay sent a text message; frames are binary"))
			return
		}
		bp := framePool.Get().(*[]byte)
		b, err := readAllInto(r, *bp)
		var m Message
		if err == nil {
			err = decodeFrame(b, &f)
		}
		if err == nil {
			m, err = c.handle(&f)
		}
		framePool.Put(bp)
		if err != nil {
			c.fail(fmt.Errorf("derp: reading from relay: %w", err))
			return
		}
		if m == nil {
			continue
		}
		select {
		case c.recv <- m:
		case <-c.ctx.Done():
			return
		}
	}
}

// handle acts on one frame from the relay and returns what Recv should
// see, if anything. f.data is only valid until handle returns.
func (c *Client) handle(f *frame) (Message, error) {
	switch f.typ {
	case frameRecvPacket:
		return Packet{Src: key.PublicFromRaw[key.NodeKind](f.key), Data: append([]byte(nil), f.data...)}, nil
	case framePeerGone:
		return PeerGone{Key: key.PublicFromRaw[key.NodeKind](f.key), Reason: f.reason}, nil
	case framePing:
		pong := frame{typ: framePong, ping: f.ping}
		if err := writeFrame(c.ctx, c.conn, &pong); err != nil {
			return nil, fmt.Errorf("answer ping: %w", err)
		}
	case framePong:
		c.mu.Lock()
		ch := c.pings[f.ping]
		c.mu.Unlock()
		if ch != nil {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	case frameKeepAlive:
	case frameError:
		c.mu.Lock()
		c.serverError = string(f.data)
		c.mu.Unlock()
	default:
		return nil, fmt.Errorf("unexpected %v frame from the relay", f.typ)
	}
	return nil, nil
}

// endReason turns the read error that ended the connection into the error
// callers see: the relay's stated reason if it sent one.
func (c *Client) endReason(err error) error {
	c.mu.Lock()
	reason := c.serverError
	c.mu.Unlock()
	if reason != "" {
		return &ServerError{Reason: reason}
	}
	return fmt.Errorf("derp: connection to relay ended: %w", err)
}
