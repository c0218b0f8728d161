package noise

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/warrenmesh/warren/internal/key"
)

// startWS serves websockets on loopback, handing each accepted connection to
// handle in the handler goroutine, and returns the URL. Cleanup closes the
// server and waits for every handler to return.
func startWS(t *testing.T, handle func(c *websocket.Conn)) string {
	t.Helper()
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1) // before the upgrade, so before the test's Dial returns
		defer wg.Done()
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer c.CloseNow()
		handle(c)
	}))
	t.Cleanup(func() {
		srv.Close()
		wg.Wait()
	})
	return srv.URL
}

func dialWS(t *testing.T, ctx context.Context, url string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// transfer writes out[0] and out[1] from two goroutines at once while reading
// the peer's two blocks, which must arrive whole, in either order.
func transfer(c *Conn, out, in [2][]byte) error {
	errc := make(chan error, 2)
	for _, b := range out {
		go func() {
			_, err := c.Write(b)
			errc <- err
		}()
	}
	got := make([]byte, len(in[0])+len(in[1]))
	_, rerr := io.ReadFull(c, got)
	werr := errors.Join(<-errc, <-errc)
	switch {
	case rerr != nil || werr != nil:
		return fmt.Errorf("read: %v, write: %v", rerr, werr)
	case bytes.Equal(got, append(bytes.Clone(in[0]), in[1]...)),
		bytes.Equal(got, append(bytes.Clone(in[1]), in[0]...)):
		return nil
	default:
		return errors.New("data corrupted or interleaved in transit")
	}
}

func TestWebSocketRoundTrip(t *testing.T) {
	ctx := testContext(t)
	m, c := key.NewMachine(), key.NewControl()
	const half = 512 << 10 // two concurrent writes of this per direction: 1 MiB
	up := [2][]byte{randomBytes(t, half), randomBytes(t, half+1)}
	down := [2][]byte{randomBytes(t, half+2), randomBytes(t, half+3)}

	type serverResult struct {
		peer   key.MachinePublic
		err    error
		eofErr error
	}
	res := make(chan serverResult, 1)
	url := startWS(t, func(ws *websocket.Conn) {
		conn, err := Server(ctx, WebSocket(ws), ServerConfig{Key: c, Replay: NewReplayGuard(0)})
		if err != nil {
			res <- serverResult{err: err}
			return
		}
		defer conn.Close()
		err = transfer(conn, down, up)
		_, eofErr := conn.Read(make([]byte, 1)) // the client closes next
		res <- serverResult{conn.Peer(), err, eofErr}
	})

	conn, err := Client(ctx, WebSocket(dialWS(t, ctx, url)), ClientConfig{Machine: m, Coordinator: c.Public()})
	if err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := transfer(conn, up, down); err != nil {
		t.Errorf("client: %v", err)
	}
	if err := conn.Close(); err != nil {
		t.Errorf("client Close: %v", err)
	}

	r := <-res
	if r.err != nil {
		t.Fatalf("server: %v", r.err)
	}
	if want := m.Public(); r.peer != want {
		t.Errorf("server Peer() = %v, want %v", r.peer, want)
	}
	if !errors.Is(r.eofErr, io.EOF) {
		t.Errorf("server Read after client Close = %v, want io.EOF", r.eofErr)
	}
}

func TestWebSocketWrongCoordinatorKey(t *testing.T) {
	ctx := testContext(t)
	m, real, pinned := key.NewMachine(), key.NewControl(), key.NewControl()
	res := make(chan error, 1)
	url := startWS(t, func(ws *websocket.Conn) {
		conn, err := Server(ctx, WebSocket(ws), ServerConfig{Key: real, Replay: NewReplayGuard(0)})
		if conn != nil {
			conn.Close()
		}
		res <- err
	})
	_, err := Client(ctx, WebSocket(dialWS(t, ctx, url)), ClientConfig{Machine: m, Coordinator: pinned.Public()})
	mustErrorIs(t, err, ErrHandshake)
	if !strings.Contains(err.Error(), "is the pinned coordinator key "+pinned.Public().String()+" right?") {
		t.Errorf("client error %q does not question the pinned key", err)
	}
	serr := <-res
	mustErrorIs(t, serr, ErrHandshake)
	if !strings.Contains(serr.Error(), "pinned a different coordinator key") {
		t.Errorf("server error %q does not explain the cause", serr)
	}
}

func TestWebSocketMessageRules(t *testing.T) {
	tests := []struct {
		name string
		// server acts on the accepted connection; client on the dialled one.
		// Each returns the error the test checks, or nil.
		server, client func(ctx context.Context, ws *websocket.Conn) error
		want           string
	}{
		{
			name: "text message is refused",
			server: func(ctx context.Context, ws *websocket.Conn) error {
				if err := ws.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
					return err
				}
				_, _, err := ws.Read(ctx) // until the client closes
				return nonEOF(err)
			},
			client: func(ctx context.Context, ws *websocket.Conn) error {
				mc := WebSocket(ws)
				defer mc.Close()
				_, err := mc.ReadMessage(ctx)
				return err
			},
			want: "want binary",
		},
		{
			name: "message over MaxMessage is refused on read",
			server: func(ctx context.Context, ws *websocket.Conn) error {
				mc := WebSocket(ws)
				defer mc.Close()
				b, err := mc.ReadMessage(ctx)
				if err != nil || len(b) != MaxMessage {
					return fmt.Errorf("message of MaxMessage bytes: got %d bytes, %v", len(b), err)
				}
				_, err = mc.ReadMessage(ctx)
				if !errors.Is(err, websocket.ErrMessageTooBig) {
					return fmt.Errorf("oversized read: %v, want ErrMessageTooBig", err)
				}
				return nil
			},
			client: func(ctx context.Context, ws *websocket.Conn) error {
				if err := ws.Write(ctx, websocket.MessageBinary, make([]byte, MaxMessage)); err != nil {
					return err
				}
				if err := ws.Write(ctx, websocket.MessageBinary, make([]byte, MaxMessage+1)); err != nil {
					return err
				}
				_, _, err := ws.Read(ctx) // the server closes the connection
				if websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
					return fmt.Errorf("connection ended with %v, want StatusMessageTooBig", err)
				}
				return errors.New("closed with StatusMessageTooBig")
			},
			want: "StatusMessageTooBig",
		},
		{
			name: "message over MaxMessage is refused on write",
			server: func(ctx context.Context, ws *websocket.Conn) error {
				_, _, err := ws.Read(ctx)
				return nonEOF(err)
			},
			client: func(ctx context.Context, ws *websocket.Conn) error {
				mc := WebSocket(ws)
				defer mc.Close()
				return mc.WriteMessage(ctx, make([]byte, MaxMessage+1))
			},
			want: "over the 65535-byte maximum",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			res := make(chan error, 1)
			url := startWS(t, func(ws *websocket.Conn) { res <- tt.server(ctx, ws) })
			err := tt.client(ctx, dialWS(t, ctx, url))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("client: %v, want an error containing %q", err, tt.want)
			}
			if err := <-res; err != nil {
				t.Errorf("server: %v", err)
			}
		})
	}
}

// nonEOF returns nil for a normal websocket closure, else err.
func nonEOF(err error) error {
	if websocket.CloseStatus(err) == websocket.StatusNormalClosure {
		return nil
	}
	return err
}

func TestWebSocketCloseUnblocksRead(t *testing.T) {
	ctx := testContext(t)
	m, c := key.NewMachine(), key.NewControl()
	res := make(chan error, 1)
	url := startWS(t, func(ws *websocket.Conn) {
		conn, err := Server(ctx, WebSocket(ws), ServerConfig{Key: c, Replay: NewReplayGuard(0)})
		if err != nil {
			res <- err
			return
		}
		defer conn.Close()
		_, err = conn.Read(make([]byte, 1))
		res <- err
	})
	tap := &tapConn{MessageConn: WebSocket(dialWS(t, ctx, url))}
	conn, err := Client(ctx, tap, ClientConfig{Machine: m, Coordinator: c.Public()})
	if err != nil {
		t.Fatal(err)
	}
	tap.entered = make(chan string, 1)
	errc := make(chan error, 1)
	go func() {
		_, err := conn.Read(make([]byte, 1))
		errc <- err
	}()
	<-tap.entered
	if err := conn.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	mustErrorIs(t, <-errc, net.ErrClosed)
	if err := <-res; !errors.Is(err, io.EOF) {
		t.Errorf("server Read = %v, want io.EOF", err)
	}
}
