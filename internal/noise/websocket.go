package noise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/coder/websocket"
)

// MessageConn is a message-oriented transport: one call, one whole message.
// It is what Client, Server and Conn run over.
//
// ReadMessage returns a slice the caller owns, and io.EOF (unwrapped or
// wrapped) when the peer closed cleanly. WriteMessage must not keep b after it
// returns. ReadMessage and WriteMessage may run concurrently with each other;
// Close must unblock both.
type MessageConn interface {
	ReadMessage(ctx context.Context) ([]byte, error)
	WriteMessage(ctx context.Context, b []byte) error
	Close() error
}

// WebSocket adapts c to MessageConn. It carries binary messages only (a text
// message is an error), limits incoming messages to MaxMessage bytes (a
// longer one fails the read and closes c with StatusMessageTooBig), refuses
// to send longer ones, and Close does a normal-closure close handshake.
//
// Note that with github.com/coder/websocket a read or write whose ctx ends
// closes the whole connection.
func WebSocket(c *websocket.Conn) MessageConn {
	c.SetReadLimit(MaxMessage)
	return wsConn{c: c}
}

type wsConn struct{ c *websocket.Conn }

func (w wsConn) ReadMessage(ctx context.Context) ([]byte, error) {
	typ, b, err := w.c.Read(ctx)
	if err != nil {
		if websocket.CloseStatus(err) == websocket.StatusNormalClosure {
			return nil, io.EOF
		}
		if errors.Is(err, websocket.ErrMessageTooBig) {
			return nil, fmt.Errorf("websocket read: peer sent a message over %d bytes: %w", MaxMessage, err)
		}
		return nil, fmt.Errorf("websocket read: %w", err)
	}
	if typ != websocket.MessageBinary {
		return nil, fmt.Errorf("websocket read: got a %s message, want binary", typ)
	}
	return b, nil
}

func (w wsConn) WriteMessage(ctx context.Context, b []byte) error {
	if len(b) > MaxMessage {
		return fmt.Errorf("websocket write: %d-byte message is over the %d-byte maximum", len(b), MaxMessage)
	}
	if err := w.c.Write(ctx, websocket.MessageBinary, b); err != nil {
		return fmt.Errorf("websocket write: %w", err)
	}
	return nil
}

func (w wsConn) Close() error {
	// net.ErrClosed: already closed, by the peer or an ended ctx.
	if err := w.c.Close(websocket.StatusNormalClosure, ""); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("websocket close: %w", err)
	}
	return nil
}
