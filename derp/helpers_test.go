package derp

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/warrenmesh/warren/internal/key"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// quietLogger discards logs unless the test runs with -v.
func quietLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testRelay is a Server on an httptest server, closed at the end of the
// test (server first, so that its handlers return).
type testRelay struct {
	*Server
	url string
}

func newRelay(t testing.TB, cfg ServerConfig) *testRelay {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		s.Close()
		ts.Close()
	})
	return &testRelay{Server: s, url: ts.URL + "/derp"}
}

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dial connects a client for k, closed at the end of the test.
func (r *testRelay) dial(t testing.TB, k key.NodePrivate) *Client {
	t.Helper()
	c, err := Dial(testCtx(t), r.url, k, ClientOptions{Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// recvPacket waits for the next message and requires it to be a Packet.
func recvPacket(t testing.TB, c *Client) Packet {
	t.Helper()
	m, err := c.Recv(testCtx(t))
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	p, ok := m.(Packet)
	if !ok {
		t.Fatalf("Recv: got %#v, want a Packet", m)
	}
	return p
}

// waitEnd waits for c's connection to end and returns why.
func waitEnd(t testing.TB, c *Client) error {
	t.Helper()
	ctx := testCtx(t)
	for {
		_, err := c.Recv(ctx)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("connection did not end: %v", err)
			}
			return err
		}
	}
}

// barrier returns once the relay has handled everything c sent before:
// the relay answers a Ping after the frames before it.
func barrier(t testing.TB, c *Client) {
	t.Helper()
	if _, err := c.Ping(testCtx(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// admitSet is an Admitter over a mutable set of keys.
type admitSet struct {
	mu   sync.Mutex
	keys map[key.NodePublic]bool
	err  error
}

func newAdmitSet(keys ...key.NodePrivate) *admitSet {
	a := &admitSet{keys: make(map[key.NodePublic]bool)}
	for _, k := range keys {
		a.keys[k.Public()] = true
	}
	return a
}

func (a *admitSet) set(k key.NodePublic, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.keys[k] = ok
}

func (a *admitSet) fail(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.err = err
}

func (a *admitSet) admit(ctx context.Context, k key.NodePublic) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.keys[k], a.err
}

// rawConn is a websocket connection that speaks frames by hand, for
// hostile and replay tests.
type rawConn struct {
	t    testing.TB
	conn *websocket.Conn
}

func rawDial(t testing.TB, url string) *rawConn {
	t.Helper()
	conn, _, err := websocket.Dial(testCtx(t), url, &websocket.DialOptions{Subprotocols: []string{Subprotocol}})
	if err != nil {
		t.Fatalf("websocket dial: %v", err)
	}
	conn.SetReadLimit(2 * maxFrameSize)
	t.Cleanup(func() { conn.CloseNow() })
	return &rawConn{t: t, conn: conn}
}

func (r *rawConn) write(b []byte) error {
	return r.conn.Write(testCtx(r.t), websocket.MessageBinary, b)
}

func (r *rawConn) writeFrame(f frame) {
	r.t.Helper()
	b, err := appendFrame(nil, &f)
	if err != nil {
		r.t.Fatalf("encode: %v", err)
	}
	if err := r.write(b); err != nil {
		r.t.Fatalf("write %v: %v", f.typ, err)
	}
}

func (r *rawConn) readFrame() (frame, error) {
	_, b, err := r.conn.Read(testCtx(r.t))
	if err != nil {
		return frame{}, err
	}
	var f frame
	return f, decodeFrame(b, &f)
}

func (r *rawConn) mustRead(want frameType) frame {
	r.t.Helper()
	f, err := r.readFrame()
	if err != nil {
		r.t.Fatalf("read %v: %v", want, err)
	}
	if f.typ != want {
		r.t.Fatalf("read %v, want %v (%q)", f.typ, want, f.data)
	}
	return f
}

// handshake completes a correct handshake as k and returns the hello it
// sent.
func (r *rawConn) handshake(k key.NodePrivate) frame {
	r.t.Helper()
	hello := r.mustRead(frameServerHello)
	ch, err := sealClientHello(k, &hello)
	if err != nil {
		r.t.Fatal(err)
	}
	r.writeFrame(ch)
	r.mustRead(frameServerInfo)
	return ch
}

// expectClosed reads until the connection ends and returns the text of
// the Error frame seen on the way ("" if none). Other frames are skipped.
func (r *rawConn) expectClosed() string {
	r.t.Helper()
	text := ""
	ctx := testCtx(r.t)
	for {
		_, b, err := r.conn.Read(ctx)
		if ctx.Err() != nil {
			r.t.Fatalf("relay did not close the connection")
		}
		if err != nil {
			return text
		}
		var f frame
		if err := decodeFrame(b, &f); err != nil {
			r.t.Fatalf("relay sent an undecodable frame: %v", err)
		}
		if f.typ == frameError {
			text = string(f.data)
		}
	}
}
