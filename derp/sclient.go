package derp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/warrenmesh/warren/internal/key"
)

// sclient is the server's side of one admitted client connection. Its
// reader is a goroutine the HTTP handler starts once the handshake is done
// (the handler returns, so net/http lets go of the request's buffers and
// stack); its writer is a goroutine the reader starts and waits for.
type sclient struct {
	s      *Server
	key    key.NodePublic
	conn   *websocket.Conn
	cork   *corkWriter // under conn's writes
	remote string

	// Frames waiting for the writer. The queues hold no buffer while they
	// are empty, so an idle client costs little.
	qmu    sync.Mutex
	data   fifo          // RecvPacket frames for this client
	ctrl   fifo          // control frames (Pong, PeerGone, Ping) for this client
	disco  fifo          // RecvPacket frames carrying disco messages; head-drop
	queued atomic.Int64  // bytes in data
	wake   chan struct{} // (capacity 1) a frame was queued: the writer looks

	ctx       context.Context // cancelled by kill, which tells the writer to stop
	cancel    context.CancelFunc
	killOnce  sync.Once
	reason    string      // why kill was called; read after ctx is done
	hardClose *time.Timer // closes the connection if the writer is stuck

	heard  atomic.Bool // the client sent something since the last keepalive tick
	missed int         // keepalive ticks without traffic; keepAliveLoop only

	// Used by the reader only.
	limiter *rate.Limiter
	gone    map[key.NodePublic]time.Time // last PeerGone sent per destination; nil until the first
}

// refusal is a handshake error the client is told about in an Error frame.
type refusal struct{ text string }

func (r refusal) Error() string { return r.text }

// serveClient upgrades a websocket client and runs the handshake; an
// admitted client is then served by its run method in a goroutine of its own,
// which takes over this handler's place in the server's wait group.
func (s *Server) serveClient(w http.ResponseWriter, r *http.Request) {
	if !s.enter() {
		http.Error(w, "relay shutting down", http.StatusServiceUnavailable)
		return
	}
	c := s.acceptClient(w, r)
	if c == nil {
		s.wg.Done()
		return
	}
	go func() {
		defer s.wg.Done()
		c.run()
	}()
}

// acceptClient upgrades the connection and runs the handshake; it returns
// the registered client, or nil when the connection was refused or failed
// (and is closed).
func (s *Server) acceptClient(w http.ResponseWriter, r *http.Request) *sclient {
	if !headerHasToken(r.Header, "Sec-WebSocket-Protocol", Subprotocol) {
		s.n.handshakeFailures.Add(1)
		http.Error(w, "this relay speaks the websocket subprotocol "+Subprotocol+"; upgrade the Warren node", http.StatusBadRequest)
		return nil
	}
	cork := &corkWriter{}
	conn, err := websocket.Accept(&corkResponseWriter{ResponseWriter: w, cork: cork}, r, &websocket.AcceptOptions{
		Subprotocols:    []string{Subprotocol},
		CompressionMode: websocket.CompressionDisabled, // WireGuard ciphertext does not compress
	})
	if err != nil {
		s.n.handshakeFailures.Add(1)
		s.log.Debug("relay websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return nil
	}
	conn.SetReadLimit(maxHandshakeFrame)

	started := time.Now()
	ctx, cancel := context.WithTimeout(s.ctx, s.handshakeTimeout)
	defer cancel()
	k, clientNonce, err := s.handshake(ctx, conn)
	if err == nil {
		err = s.admit(ctx, k)
	}
	var c *sclient
	if err == nil {
		// Register before ServerInfo, so that once Dial returns, packets
		// for this key come here (and not to a connection it replaces).
		c = s.newSClient(k, conn, cork, r.RemoteAddr)
		if err = s.register(c, started); err != nil {
			err = refusal{err.Error()}
		}
	}
	if err == nil {
		var info frame
		if info, err = sealServerInfo(s.priv, k, &clientNonce, s.cfg.KeepAliveEvery); err == nil {
			err = writeFrame(ctx, conn, &info)
		}
		if err != nil {
			s.unregister(c)
			c.kill("handshake failed")
			c.hardClose.Stop() // no writer to say goodbye; CloseNow below ends it
		}
	}
	if err != nil {
		var ref refusal
		if errors.As(err, &ref) {
			_ = conn.Write(ctx, websocket.MessageBinary, errorFrame(ref.text))
		}
		s.log.Debug("relay handshake failed", "remote", r.RemoteAddr, "node", k, "err", err)
		conn.CloseNow()
		return nil
	}
	conn.SetReadLimit(maxFrameSize)
	s.n.admitted.Add(1)
	s.log.Debug("relay client connected", "node", k, "remote", r.RemoteAddr)
	return c
}

// run serves an admitted client until it disconnects: it reads in
// this goroutine and writes in one it starts and waits for.
func (c *sclient) run() {
	s := c.s
	defer c.conn.CloseNow()
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()
	err := c.readLoop()
	var pe protocolError
	if errors.As(err, &pe) {
		s.n.protoError.Add(1)
		c.kill("protocol error: " + pe.Error())
	} else {
		c.kill("connection ended")
	}
	<-writerDone
	s.unregister(c)
	s.log.Debug("relay client gone", "node", c.key, "remote", c.remote, "reason", c.reason, "read_err", err)
}

// newSClient returns the server side of an admitted connection.
func (s *Server) newSClient(k key.NodePublic, conn *websocket.Conn, cork *corkWriter, remote string) *sclient {
	c := &sclient{
		s:      s,
		key:    k,
		conn:   conn,
		cork:   cork,
		remote: remote,
		wake:   make(chan struct{}, 1),
	}
	if s.cfg.RateBytesPerSec > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(s.cfg.RateBytesPerSec), s.cfg.RateBurst)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.heard.Store(true)
	return c
}

// handshake sends the ServerHello and checks the ClientHello. It returns
// the proven node key and the client's nonce.
func (s *Server) handshake(ctx context.Context, conn *websocket.Conn) (key.NodePublic, [nonceLen]byte, error) {
	var nonce [nonceLen]byte
	hello, err := newServerHello(s.pub)
	if err == nil {
		err = writeFrame(ctx, conn, &hello)
	}
	if err != nil {
		s.n.handshakeFailures.Add(1)
		return key.NodePublic{}, nonce, err
	}
	var f frame
	buf := make([]byte, maxHandshakeFrame+1)
	b, err := readMessage(ctx, conn, buf)
	if err == nil {
		err = decodeFrame(b, &f)
	}
	var pe protocolError
	if errors.As(err, &pe) || (err != nil && b != nil) {
		err = refusal{"handshake failed: " + err.Error()}
	}
	if err != nil {
		s.n.handshakeFailures.Add(1)
		return key.NodePublic{}, nonce, err
	}
	k, _, err := openClientHello(s.priv, &hello.challenge, &f)
	if err != nil {
		s.n.handshakeFailures.Add(1)
		return k, nonce, refusal{err.Error()}
	}
	return k, f.nonce, nil
}

// admit asks the Admitter about k.
func (s *Server) admit(ctx context.Context, k key.NodePublic) error {
	if s.cfg.Admit == nil {
		return nil
	}
	ok, err := s.cfg.Admit(ctx, k)
	if err != nil {
		s.n.refused.Add(1)
		s.n.admitErrors.Add(1)
		s.log.Warn("relay admission check failed; refusing the client", "node", k, "err", err)
		return refusal{"admission check failed; try again later"}
	}
	if !ok {
		s.n.refused.Add(1)
		return refusal{"not admitted by the coordinator"}
	}
	return nil
}

// kill ends the client: the writer sends reason in an Error frame and
// closes the connection, which ends the reader. If the writer is stuck
// writing to a client that does not read, the connection is closed under
// it after goodbyeTimeout.
//
// (Writes do not take a context that kill cancels: the websocket library
// closes the connection when a write's context ends even a moment after
// the bytes went out, which would lose the Error frame.)
func (c *sclient) kill(reason string) {
	c.killOnce.Do(func() {
		c.reason = reason
		c.hardClose = time.AfterFunc(goodbyeTimeout, func() { c.conn.CloseNow() })
		c.cancel()
	})
}

// protocolError is a malformed or unexpected frame from an admitted client.
type protocolError struct{ err error }

func (e protocolError) Error() string { return e.err.Error() }

// readLoop reads and handles the client's frames until the connection
// ends or the client breaks the protocol.
func (c *sclient) readLoop() error {
	var f frame
	for {
		typ, r, err := c.conn.Reader(context.Background())
		if err != nil {
			return err
		}
		if typ != websocket.MessageBinary {
			return protocolError{errors.New("text message; frames are binary")}
		}
		bp := framePool.Get().(*[]byte)
		b, err := readAllInto(r, *bp)
		if err == nil {
			c.heard.Store(true)
			if err = decodeFrame(b, &f); err != nil {
				err = protocolError{err}
			} else {
				err = c.handle(&f, len(b))
			}
		}
		framePool.Put(bp)
		if err != nil {
			return err
		}
	}
}

// handle acts on one frame from the client; f.data aliases a pooled
// buffer that is reused after handle returns.
func (c *sclient) handle(f *frame, size int) error {
	switch f.typ {
	case frameSendPacket:
		c.sendPacket(f, size)
	case framePing:
		b := make([]byte, 1+pingLen)
		b[0] = byte(framePong)
		copy(b[1:], f.ping[:])
		c.sendCtrl(b)
	case framePong, frameKeepAlive:
		// Liveness only: heard is already set.
	default:
		return protocolError{fmt.Errorf("unexpected %v frame from a client", f.typ)}
	}
	return nil
}

// sendPacket forwards one SendPacket frame to its destination's queue, or
// drops it (rate limit, unknown destination, full queue) and counts it.
func (c *sclient) sendPacket(f *frame, size int) {
	s := c.s
	if c.limiter != nil && !c.limiter.AllowN(time.Now(), size+FrameOverhead) {
		s.n.droppedRateLimited.Add(1)
		return
	}
	dstKey := key.PublicFromRaw[key.NodeKind](f.key)
	dst := s.lookup(dstKey)
	if dst == nil {
		s.n.droppedUnknownDst.Add(1)
		c.peerGone(dstKey, PeerGoneNotHere)
		return
	}
	out := appendPacketFrame(make([]byte, 0, size), frameRecvPacket, c.key.Raw(), f.data)
	if looksDisco(f.data) && !s.singleQueue {
		if n := dst.enqueueDisco(out); n > 0 {
			s.n.droppedDiscoOldest.Add(uint64(n))
		}
		return
	}
	if !dst.enqueue(out) {
		s.n.droppedQueueFull.Add(1)
	}
}

// enqueueDisco adds a RecvPacket frame carrying a disco message to c's
// disco queue, dropping the oldest queued disco frame if it is full (the
// newest ping or call-me-maybe is the one worth delivering). It returns
// how many frames were dropped.
func (c *sclient) enqueueDisco(b []byte) int {
	c.qmu.Lock()
	dropped := c.disco.pushDropOldest(b, discoQueueLen)
	c.qmu.Unlock()
	c.signal()
	if dropped {
		return 1
	}
	return 0
}

// enqueue adds a RecvPacket frame to c's data queue; false if the queue
// is full (in frames or bytes).
func (c *sclient) enqueue(b []byte) bool {
	n := int64(len(b))
	c.qmu.Lock()
	ok := c.queued.Load()+n <= int64(c.s.cfg.QueueBytes) && c.data.push(b, c.s.cfg.QueueLen)
	if ok {
		c.queued.Add(n)
	}
	c.qmu.Unlock()
	if ok {
		c.signal()
	}
	return ok
}

// sendCtrl queues a control frame for c, dropping it if c is far behind.
func (c *sclient) sendCtrl(b []byte) {
	c.qmu.Lock()
	ok := c.ctrl.push(b, ctrlQueueLen)
	c.qmu.Unlock()
	if ok {
		c.signal()
	}
}

// signal wakes the writer, which takes every queued frame.
func (c *sclient) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// peerGone tells c that dst is not here, at most once per peerGoneEvery
// for each dst.
func (c *sclient) peerGone(dst key.NodePublic, reason PeerGoneReason) {
	now := time.Now()
	if t, ok := c.gone[dst]; ok && now.Sub(t) < peerGoneEvery {
		return
	}
	if len(c.gone) >= maxGoneEntries {
		for k, t := range c.gone {
			if now.Sub(t) >= peerGoneEvery {
				delete(c.gone, k)
			}
		}
		if len(c.gone) >= maxGoneEntries {
			clear(c.gone)
		}
	}
	if c.gone == nil {
		c.gone = make(map[key.NodePublic]time.Time)
	}
	c.gone[dst] = now
	f := frame{typ: framePeerGone, key: dst.Raw(), reason: reason}
	b, _ := appendFrame(make([]byte, 0, 2+key.Size), &f)
	c.sendCtrl(b)
}

// writeLoop writes queued frames to the client until kill, then says
// goodbye and closes the connection. Frames that are already queued when
// it wakes up go out in one system call (up to maxBatch frames).
func (c *sclient) writeLoop() {
	defer func() {
		c.kill("write failed")
		c.conn.CloseNow()
		c.hardClose.Stop()
	}()
	for {
		b, data, ok := c.next(true)
		if !ok {
			select {
			case <-c.ctx.Done():
				ctx, cancel := context.WithTimeout(context.Background(), goodbyeTimeout)
				_ = c.conn.Write(ctx, websocket.MessageBinary, errorFrame(c.reason))
				cancel()
				return
			case <-c.wake:
				continue
			}
		}
		c.cork.cork()
		err := c.write(b)
		discos := 0
		for i := 1; err == nil && i < maxBatch; i++ {
			if !data && frameType(b[0]) == frameRecvPacket {
				discos++
			}
			if b, data, ok = c.next(discos < maxDiscoPerBatch); !ok {
				break
			}
			err = c.write(b)
		}
		if uerr := c.cork.uncork(); err == nil {
			err = uerr
		}
		if err != nil {
			return
		}
	}
}

// next returns a queued frame without waiting, by priority: control
// frames, then disco (unless disco is false: the batch had its share),
// then data, so that under congestion the message that may move traffic
// off the relay goes first but a disco flood cannot starve data. data
// reports a frame from the data queue; ok is false when nothing is queued.
func (c *sclient) next(disco bool) (b []byte, data, ok bool) {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if b, ok = c.ctrl.pop(); ok {
		return b, false, true
	}
	if disco {
		if b, ok = c.disco.pop(); ok {
			return b, false, true
		}
	}
	if b, ok = c.data.pop(); ok {
		c.queued.Add(-int64(len(b)))
		return b, true, true
	}
	if b, ok = c.disco.pop(); ok {
		return b, false, true
	}
	return nil, false, false
}

// write writes one frame; every RecvPacket counts as forwarded.
func (c *sclient) write(b []byte) error {
	if err := c.conn.Write(context.Background(), websocket.MessageBinary, b); err != nil {
		return err
	}
	if frameType(b[0]) == frameRecvPacket {
		c.s.n.framesForwarded.Add(1)
		c.s.n.bytesForwarded.Add(uint64(len(b) - packetHeaderSz))
	}
	return nil
}

// framePool holds buffers for one maximal frame (plus one byte, to notice
// an oversize message), reused by readers across connections.
var framePool = sync.Pool{New: func() any {
	b := make([]byte, maxFrameSize+1)
	return &b
}}

// readAllInto reads r to EOF into buf and returns the filled part; a
// message longer than buf is an error.
func readAllInto(r io.Reader, buf []byte) ([]byte, error) {
	n := 0
	for {
		if n == len(buf) {
			return nil, protocolError{fmt.Errorf("message over %d bytes", len(buf)-1)}
		}
		m, err := r.Read(buf[n:])
		n += m
		if err == io.EOF {
			if n == len(buf) {
				return nil, protocolError{fmt.Errorf("message over %d bytes", len(buf)-1)}
			}
			return buf[:n], nil
		}
		if errors.Is(err, websocket.ErrMessageTooBig) {
			return nil, protocolError{err}
		}
		if err != nil {
			return nil, err
		}
	}
}

// readMessage reads one binary message into buf.
func readMessage(ctx context.Context, conn *websocket.Conn, buf []byte) ([]byte, error) {
	typ, r, err := conn.Reader(ctx)
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageBinary {
		return nil, protocolError{errors.New("text message; frames are binary")}
	}
	return readAllInto(r, buf)
}

// writeFrame encodes f and writes it as one message.
func writeFrame(ctx context.Context, conn *websocket.Conn, f *frame) error {
	b, err := appendFrame(nil, f)
	if err != nil {
		return err
	}
	return conn.Write(ctx, websocket.MessageBinary, b)
}
