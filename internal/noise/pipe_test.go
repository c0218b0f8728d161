package noise

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/warrenmesh/warren/internal/key"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// pipe returns two connected in-memory MessageConns; each direction buffers
// up to buf messages. Closing either end ends both: the closer's own calls
// then fail with net.ErrClosed, the other end's reads drain what is buffered
// and then return io.EOF.
func pipe(buf int) (a, b *pipeConn) {
	ab, ba := make(chan []byte, buf), make(chan []byte, buf)
	sh := &pipeShared{done: make(chan struct{})}
	a = &pipeConn{in: ba, out: ab, sh: sh, local: make(chan struct{})}
	b = &pipeConn{in: ab, out: ba, sh: sh, local: make(chan struct{})}
	return a, b
}

type pipeShared struct {
	once sync.Once
	done chan struct{}
}

type pipeConn struct {
	in        <-chan []byte
	out       chan<- []byte
	sh        *pipeShared
	localOnce sync.Once
	local     chan struct{}
}

func (p *pipeConn) ReadMessage(ctx context.Context) ([]byte, error) {
	select {
	case <-p.local:
		return nil, net.ErrClosed
	case b := <-p.in:
		return b, nil
	default:
	}
	select {
	case b := <-p.in:
		return b, nil
	case <-p.sh.done:
		select {
		case <-p.local:
			return nil, net.ErrClosed
		case b := <-p.in:
			return b, nil
		default:
			return nil, io.EOF
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *pipeConn) WriteMessage(ctx context.Context, b []byte) error {
	select {
	case <-p.sh.done:
		return net.ErrClosed
	default:
	}
	b = append([]byte(nil), b...)
	select {
	case p.out <- b: // a free buffer slot wins over an ended ctx
		return nil
	default:
	}
	select {
	case p.out <- b:
		return nil
	case <-p.sh.done:
		return net.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *pipeConn) Close() error {
	p.localOnce.Do(func() { close(p.local) })
	p.sh.once.Do(func() { close(p.sh.done) })
	return nil
}

// tapConn wraps a MessageConn: it records every message written, and while
// hold is set it records without forwarding. entered, if set, receives a
// value as each Read/WriteMessage call starts.
type tapConn struct {
	MessageConn
	entered chan string

	mu     sync.Mutex
	hold   bool
	writes [][]byte
}

func (t *tapConn) ReadMessage(ctx context.Context) ([]byte, error) {
	if t.entered != nil {
		t.entered <- "read"
	}
	return t.MessageConn.ReadMessage(ctx)
}

func (t *tapConn) WriteMessage(ctx context.Context, b []byte) error {
	if t.entered != nil {
		t.entered <- "write"
	}
	t.mu.Lock()
	t.writes = append(t.writes, append([]byte(nil), b...))
	hold := t.hold
	t.mu.Unlock()
	if hold {
		return nil
	}
	return t.MessageConn.WriteMessage(ctx, b)
}

func (t *tapConn) setHold(h bool) {
	t.mu.Lock()
	t.hold = h
	t.mu.Unlock()
}

func (t *tapConn) written() [][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([][]byte(nil), t.writes...)
}

// fixedKeys are deterministic keys, so fuzz seeds stay valid across runs.
func fixedKeys() (key.MachinePrivate, key.ControlPrivate) {
	var m, c [key.Size]byte
	for i := range m {
		m[i], c[i] = byte(i+1), byte(0xff-i)
	}
	return key.PrivateFromRaw[key.MachineKind](m), key.PrivateFromRaw[key.ControlKind](c)
}

// fixedNow is the clock of tests that need a reproducible handshake time.
var fixedNow = time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC)

func clock(t time.Time) func() time.Time { return func() time.Time { return t } }

// result is the outcome of one side of a handshake.
type result struct {
	conn *Conn
	err  error
}

// handshake runs Server on smc in a goroutine and Client on cmc, waits for
// both and returns both outcomes. Successful Conns are closed at cleanup.
func handshake(t testing.TB, cmc, smc MessageConn, ccfg ClientConfig, scfg ServerConfig) (client, server result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan result, 1)
	go func() {
		c, err := Server(ctx, smc, scfg)
		done <- result{c, err}
	}()
	c, err := Client(ctx, cmc, ccfg)
	client = result{c, err}
	server = <-done // Client closes cmc on error, which ends a waiting Server.
	for _, r := range []result{client, server} {
		if r.conn != nil {
			t.Cleanup(func() { r.conn.Close() })
		}
	}
	return client, server
}

// pipePair returns a client and server Conn connected through an in-memory
// pipe after a successful handshake, plus the tap on the client's side.
func pipePair(t testing.TB, buf int) (client, server *Conn, tap *tapConn) {
	t.Helper()
	a, b := pipe(buf)
	tap = &tapConn{MessageConn: a}
	m, c := key.NewMachine(), key.NewControl()
	cr, sr := handshake(t, tap,
		b, ClientConfig{Machine: m, Coordinator: c.Public()},
		ServerConfig{Key: c, Replay: NewReplayGuard(0)})
	if cr.err != nil || sr.err != nil {
		t.Fatalf("handshake: client: %v, server: %v", cr.err, sr.err)
	}
	return cr.conn, sr.conn, tap
}

// mustErrorIs fails t unless err wraps every one of targets.
func mustErrorIs(t testing.TB, err error, targets ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one wrapping %v", targets)
	}
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Fatalf("error %q does not wrap %v", err, target)
		}
	}
}
