package controlclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/noise"
	"github.com/warrenmesh/warren/internal/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds every wait for an event in these tests; only a hung client
// takes this long.
const wait = 10 * time.Second

// msgPipe is one end of an in-memory MessageConn pair. Each direction
// buffers up to buf messages, then writes block (a stalled channel).
// Closing either end ends both.
type msgPipe struct {
	in   <-chan []byte
	out  chan<- []byte
	once *sync.Once
	done chan struct{}
}

func newMsgPipe(buf int) (a, b *msgPipe) {
	ab, ba := make(chan []byte, buf), make(chan []byte, buf)
	once, done := &sync.Once{}, make(chan struct{})
	return &msgPipe{in: ba, out: ab, once: once, done: done}, &msgPipe{in: ab, out: ba, once: once, done: done}
}

func (p *msgPipe) ReadMessage(ctx context.Context) ([]byte, error) {
	select {
	case b := <-p.in:
		return b, nil
	case <-p.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *msgPipe) WriteMessage(ctx context.Context, b []byte) error {
	select {
	case <-p.done:
		return net.ErrClosed
	default:
	}
	select {
	case p.out <- append([]byte(nil), b...):
		return nil
	case <-p.done:
		return net.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *msgPipe) Close() error { p.once.Do(func() { close(p.done) }); return nil }

// coord is the coordinator's side of the control channel, driven by each
// test: the client's dials become pipes whose far end runs the real
// Noise handshake and lands in conns.
type coord struct {
	t      *testing.T
	key    key.ControlPrivate
	replay *noise.ReplayGuard
	buf    int // messages each pipe direction buffers
	conns  chan *noise.Conn
	ctx    context.Context

	mu        sync.Mutex
	dials     int
	failDials int // the first failDials dials fail
}

func newCoord(t *testing.T, buf int) *coord {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return &coord{t: t, key: key.NewControl(), replay: noise.NewReplayGuard(0), buf: buf,
		conns: make(chan *noise.Conn), ctx: ctx}
}

func (f *coord) dial(ctx context.Context) (noise.MessageConn, func(), error) {
	f.mu.Lock()
	f.dials++
	fail := f.dials <= f.failDials
	f.mu.Unlock()
	if fail {
		return nil, nil, errors.New("dial coordinator: unreachable (test)")
	}
	a, b := newMsgPipe(f.buf)
	go func() { // ends with the handshake and the hand-over (or the test)
		conn, err := noise.Server(f.ctx, b, noise.ServerConfig{Key: f.key, Replay: f.replay})
		if err != nil {
			return
		}
		select {
		case f.conns <- conn:
		case <-f.ctx.Done():
			conn.Close()
		}
	}()
	return a, func() { a.Close() }, nil
}

func (f *coord) dialCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dials
}

// accept returns the next channel the client opened.
func (f *coord) accept() *noise.Conn {
	f.t.Helper()
	select {
	case c := <-f.conns:
		f.t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(wait):
		f.t.Fatal("the client never connected")
		return nil
	}
}

// startClient runs a client against f until the test ends.
func startClient(t *testing.T, f *coord, cfg Config) *Client {
	t.Helper()
	cfg.URL, cfg.ControlKey, cfg.Machine = "http://coordinator.test", f.key.Public(), key.NewMachine()
	cfg.NodeKey, cfg.DiscoKey, cfg.Hostname = key.NewNode().Public(), key.NewDisco().Public(), "node"
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff, cfg.MaxBackoff = 5*time.Millisecond, 20*time.Millisecond
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.dial = f.dial
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

// read reads the next message of type T from the client, skipping
// keep-alive answers.
func read[T wire.Message](t *testing.T, conn *noise.Conn) T {
	t.Helper()
	for {
		m, err := wire.ReadMessage(conn, wire.MaxNodeMessage)
		if err != nil {
			t.Fatalf("read from the client: %v", err)
		}
		if _, ok := m.(*wire.KeepAlive); ok {
			continue
		}
		v, ok := m.(T)
		if !ok {
			t.Fatalf("got %T from the client, want %T", m, v)
		}
		return v
	}
}

func write(t *testing.T, conn *noise.Conn, m wire.Message) {
	t.Helper()
	if err := wire.WriteMessage(conn, m); err != nil {
		t.Fatalf("write %T to the client: %v", m, err)
	}
}

// register answers the client's registration and map request with a full
// map, and returns the map request.
func register(t *testing.T, conn *noise.Conn) *wire.MapRequest {
	t.Helper()
	read[*wire.RegisterRequest](t, conn)
	self := &wire.Node{ID: 1, Name: "node", Addresses: []netip.Prefix{netip.MustParsePrefix("100.64.0.1/32")}}
	write(t, conn, &wire.RegisterResponse{Authorized: true, Self: self})
	mr := read[*wire.MapRequest](t, conn)
	write(t, conn, &wire.MapResponse{Version: 1, Full: true, Self: self})
	return mr
}

// eps returns a distinct endpoint list for i.
func eps(i int) []netip.AddrPort {
	return []netip.AddrPort{netip.MustParseAddrPort(fmt.Sprintf("192.0.2.%d:%d", i%250+1, 1000+i))}
}
