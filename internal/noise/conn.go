package noise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/flynn/noise"

	"github.com/warrenmesh/warren/internal/key"
)

// Conn is an encrypted byte stream over a MessageConn, returned by Client and
// Server after a successful handshake.
//
// Write splits data into Noise transport messages of at most MaxPlaintext
// bytes of plaintext and sends each as one MessageConn message; Read decrypts
// message by message and serves the bytes with io.Reader semantics. Each
// direction has its own cipher state whose nonce counts messages, so a
// replayed, reordered, dropped or altered message fails to decrypt and the
// stream ends with an error.
//
// Write is safe for concurrent use and writes each call's bytes contiguously.
// Read is meant for one goroutine (concurrent calls are serialised). Close may
// be called at any time and unblocks a pending Read or Write.
type Conn struct {
	mc     MessageConn
	peer   key.MachinePublic
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	closed atomic.Bool

	wmu  sync.Mutex
	send *noise.CipherState
	wbuf []byte // reused while at most keepBuffer
	werr error  // sticky: after a failed write the nonces are out of step

	rmu  sync.Mutex
	recv *noise.CipherState
	rbuf []byte // decrypted, not yet returned
	rerr error  // sticky

	closeOnce sync.Once
}

func newConn(mc MessageConn, peer key.MachinePublic, send, recv *noise.CipherState) *Conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &Conn{mc: mc, peer: peer, ctx: ctx, cancel: cancel, send: send, recv: recv}
}

// Peer returns the authenticated machine key of the node on the server side,
// and the zero key on the client side (the peer there is the pinned
// coordinator key).
func (c *Conn) Peer() key.MachinePublic { return c.peer }

// Write encrypts p and sends it as one or more messages. It returns the number
// of bytes of p handed to the transport. After an error every later Write
// fails too: a message may have been lost, so the peer's nonce no longer
// matches.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return 0, c.werr
	}
	if c.closed.Load() {
		return 0, fmt.Errorf("noise: write: %w", net.ErrClosed)
	}
	n := 0
	for n < len(p) {
		chunk := p[n:min(len(p), n+MaxPlaintext)]
		msg, err := c.send.Encrypt(c.wbuf[:0], nil, chunk)
		if err != nil {
			c.werr = fmt.Errorf("noise: encrypt message: %w", err)
			return n, c.werr
		}
		c.wbuf = msg
		if err := c.mc.WriteMessage(c.ctx, msg); err != nil {
			if c.closed.Load() {
				err = net.ErrClosed
			}
			c.werr = fmt.Errorf("noise: write message: %w", err)
			return n, c.werr
		}
		n += len(chunk)
	}
	if cap(c.wbuf) > keepBuffer {
		c.wbuf = nil
	}
	return n, nil
}

// Read reads decrypted bytes into p. It returns io.EOF when the peer closed
// the transport cleanly, an error wrapping net.ErrClosed after Close, and an
// error starting "noise: decrypt message" for a message that fails
// authentication (a replay, reordering, corruption or forgery). Errors are
// sticky.
func (c *Conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if len(p) == 0 {
		return 0, nil
	}
	for len(c.rbuf) == 0 {
		if c.rerr != nil {
			return 0, c.rerr
		}
		c.rerr = c.readMessage()
	}
	n := copy(p, c.rbuf)
	c.rbuf = c.rbuf[n:]
	if len(c.rbuf) == 0 {
		c.rbuf = nil // let the message's buffer go
	}
	return n, nil
}

// readMessage reads and decrypts one message into c.rbuf. An empty message
// leaves c.rbuf empty.
func (c *Conn) readMessage() error {
	if c.closed.Load() {
		return fmt.Errorf("noise: read: %w", net.ErrClosed)
	}
	msg, err := c.mc.ReadMessage(c.ctx)
	switch {
	case c.closed.Load():
		return fmt.Errorf("noise: read: %w", net.ErrClosed)
	case errors.Is(err, io.EOF):
		return io.EOF
	case err != nil:
		return fmt.Errorf("noise: read message: %w", err)
	case len(msg) < tagSize:
		return fmt.Errorf("noise: decrypt message: %d bytes is shorter than the %d-byte tag", len(msg), tagSize)
	case len(msg) > MaxMessage:
		return fmt.Errorf("noise: decrypt message: %d bytes is longer than the %d-byte maximum", len(msg), MaxMessage)
	}
	// Decrypt in place: msg is ours, and the AEAD allows exact overlap.
	pt, err := c.recv.Decrypt(msg[:0], nil, msg)
	if err != nil {
		return fmt.Errorf("noise: decrypt message: %w (replayed, reordered or corrupt message)", err)
	}
	c.rbuf = pt
	return nil
}

// Close closes the transport and unblocks a pending Read or Write, which
// then return an error wrapping net.ErrClosed. Later calls return nil.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		if cerr := c.mc.Close(); cerr != nil {
			err = fmt.Errorf("noise: close: %w", cerr)
		}
		c.cancel()
	})
	return err
}

// keepBuffer is the largest write buffer a Conn keeps between writes: enough
// for the small messages a control channel mostly carries (keep-alives,
// patches), never the largest one it ever sent.
const keepBuffer = 1 << 10
