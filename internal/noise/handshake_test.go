package noise

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/key"
)

func TestHandshake(t *testing.T) {
	a, b := pipe(1)
	m, c := key.NewMachine(), key.NewControl()
	cr, sr := handshake(t, a, b,
		ClientConfig{Machine: m, Coordinator: c.Public()},
		ServerConfig{Key: c, Replay: NewReplayGuard(0)})
	if cr.err != nil || sr.err != nil {
		t.Fatalf("handshake: client: %v, server: %v", cr.err, sr.err)
	}
	if got, want := sr.conn.Peer(), m.Public(); got != want {
		t.Errorf("server Peer() = %v, want %v", got, want)
	}
	if got := cr.conn.Peer(); !got.IsZero() {
		t.Errorf("client Peer() = %v, want the zero key", got)
	}
}

func TestHandshakeConfigErrors(t *testing.T) {
	m, c := key.NewMachine(), key.NewControl()
	guard := NewReplayGuard(0)
	tests := []struct {
		name   string
		client *ClientConfig // nil: test the server
		server *ServerConfig
		want   string
	}{
		{"client without machine key", &ClientConfig{Coordinator: c.Public()}, nil, "Machine is not set"},
		{"client without coordinator key", &ClientConfig{Machine: m}, nil, "/key URL"},
		{"server without key", nil, &ServerConfig{Replay: guard}, "Key is not set"},
		{"server without replay guard", nil, &ServerConfig{Key: c}, "Replay is nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _ := pipe(1)
			var err error
			if tt.client != nil {
				_, err = Client(context.Background(), a, *tt.client)
			} else {
				_, err = Server(context.Background(), a, *tt.server)
			}
			mustErrorIs(t, err, ErrHandshake)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			// The MessageConn was closed.
			if err := a.WriteMessage(context.Background(), nil); err == nil {
				t.Error("MessageConn still open after a failed handshake")
			}
		})
	}
}

func TestHandshakeWrongCoordinatorKey(t *testing.T) {
	a, b := pipe(1)
	m, real, pinned := key.NewMachine(), key.NewControl(), key.NewControl()
	cr, sr := handshake(t, a, b,
		ClientConfig{Machine: m, Coordinator: pinned.Public()},
		ServerConfig{Key: real, Replay: NewReplayGuard(0)})
	mustErrorIs(t, sr.err, ErrHandshake)
	mustErrorIs(t, cr.err, ErrHandshake)
	if !strings.Contains(sr.err.Error(), "pinned a different coordinator key") {
		t.Errorf("server error %q does not explain the cause", sr.err)
	}
	if !strings.Contains(cr.err.Error(), pinned.Public().String()) || !strings.Contains(cr.err.Error(), "/key URL") {
		t.Errorf("client error %q does not name the pinned key and where to get the right one", cr.err)
	}
}

func TestHandshakeClock(t *testing.T) {
	const window = time.Minute
	tests := []struct {
		name   string
		offset time.Duration // client clock minus server clock
		ok     bool
	}{
		{"in step", 0, true},
		{"client ahead within window", window - time.Second, true},
		{"client behind within window", -window + time.Second, true},
		{"client ahead beyond window", window + time.Second, false},
		{"client behind beyond window", -window - time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := pipe(1)
			m, c := key.NewMachine(), key.NewControl()
			cr, sr := handshake(t, a, b,
				ClientConfig{Machine: m, Coordinator: c.Public(), Now: clock(fixedNow.Add(tt.offset))},
				ServerConfig{Key: c, Replay: NewReplayGuard(window), Now: clock(fixedNow)})
			if tt.ok {
				if cr.err != nil || sr.err != nil {
					t.Fatalf("handshake: client: %v, server: %v", cr.err, sr.err)
				}
				return
			}
			mustErrorIs(t, sr.err, ErrHandshake, ErrReplay)
			mustErrorIs(t, cr.err, ErrHandshake)
			if !strings.Contains(sr.err.Error(), "clock") {
				t.Errorf("server error %q does not point at the clock", sr.err)
			}
		})
	}
}

func TestHandshakeReplay(t *testing.T) {
	m, c := key.NewMachine(), key.NewControl()
	guard := NewReplayGuard(0)
	scfg := ServerConfig{Key: c, Replay: guard}

	// A genuine handshake, recorded.
	a, b := pipe(1)
	tap := &tapConn{MessageConn: a}
	cr, sr := handshake(t, tap, b, ClientConfig{Machine: m, Coordinator: c.Public()}, scfg)
	if cr.err != nil || sr.err != nil {
		t.Fatalf("handshake: client: %v, server: %v", cr.err, sr.err)
	}
	first := tap.written()[0]

	// The same message on a new connection is refused before any answer.
	a, b = pipe(1)
	if err := a.WriteMessage(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	_, err := Server(context.Background(), b, scfg)
	mustErrorIs(t, err, ErrHandshake, ErrReplay)
	if msg, err := a.ReadMessage(context.Background()); !errors.Is(err, io.EOF) {
		t.Errorf("server answered a replayed handshake: %x, %v", msg, err)
	}

	// The node itself can still connect with a fresh handshake.
	a, b = pipe(1)
	cr, sr = handshake(t, a, b, ClientConfig{Machine: m, Coordinator: c.Public()}, scfg)
	if cr.err != nil || sr.err != nil {
		t.Fatalf("fresh handshake after a replay: client: %v, server: %v", cr.err, sr.err)
	}
}

// validInitiation returns a genuine first handshake message for the fixed
// keys at fixedNow.
func validInitiation(t testing.TB) []byte {
	t.Helper()
	m, c := fixedKeys()
	a, b := pipe(1)
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Client sends into the buffer, then fails reading the answer.
	if _, err := Client(ctx, a, ClientConfig{Machine: m, Coordinator: c.Public(), Now: clock(fixedNow)}); err == nil {
		t.Fatal("Client succeeded without a server")
	}
	msg, err := b.ReadMessage(context.Background())
	if err != nil {
		t.Fatalf("read initiation: %v", err)
	}
	return msg
}

func TestServerRejectsBadFirstMessage(t *testing.T) {
	valid := validInitiation(t)
	flip := func(i int) []byte {
		b := bytes.Clone(valid)
		b[i] ^= 1
		return b
	}
	random := make([]byte, initiatorMsgSize)
	rand.Read(random)
	tests := []struct {
		name string
		msg  []byte
		want string
	}{
		{"empty", nil, "0 bytes, want 108"},
		{"short garbage", []byte("GET / HTTP/1.1\r\n"), "16 bytes, want 108"},
		{"truncated", valid[:len(valid)-1], "107 bytes, want 108"},
		{"one byte extra", append(bytes.Clone(valid), 0), "109 bytes, want 108"},
		{"oversized", make([]byte, MaxMessage+1), "65536 bytes, want 108"},
		{"random of the right size", random, "could not be decrypted"},
		{"all zero", make([]byte, initiatorMsgSize), "could not be decrypted"},
		{"flipped ephemeral", flip(0), "could not be decrypted"},
		{"flipped static", flip(40), "could not be decrypted"},
		{"flipped payload", flip(100), "could not be decrypted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, c := fixedKeys()
			a, b := pipe(1)
			defer a.Close()
			if err := a.WriteMessage(context.Background(), tt.msg); err != nil {
				t.Fatal(err)
			}
			_, err := Server(context.Background(), b, ServerConfig{Key: c, Replay: NewReplayGuard(0), Now: clock(fixedNow)})
			mustErrorIs(t, err, ErrHandshake)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}

	// The untouched message is accepted by the same configuration, so the
	// failures above are due to the damage.
	_, c := fixedKeys()
	a, b := pipe(1)
	defer a.Close()
	if err := a.WriteMessage(context.Background(), valid); err != nil {
		t.Fatal(err)
	}
	conn, err := Server(context.Background(), b, ServerConfig{Key: c, Replay: NewReplayGuard(0), Now: clock(fixedNow)})
	if err != nil {
		t.Fatalf("valid message: %v", err)
	}
	conn.Close()
}

func TestClientRejectsBadResponse(t *testing.T) {
	random := make([]byte, responderMsgSize)
	rand.Read(random)
	tests := []struct {
		name string
		resp []byte
		want string
	}{
		{"empty", nil, "0-byte handshake response, want 48"},
		{"too long", make([]byte, responderMsgSize+1), "49-byte handshake response, want 48"},
		{"random of the right size", random, "could not be decrypted"},
		{"all zero", make([]byte, responderMsgSize), "could not be decrypted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, c := key.NewMachine(), key.NewControl()
			a, b := pipe(1)
			defer b.Close()
			if err := b.WriteMessage(context.Background(), tt.resp); err != nil {
				t.Fatal(err)
			}
			_, err := Client(context.Background(), a, ClientConfig{Machine: m, Coordinator: c.Public()})
			mustErrorIs(t, err, ErrHandshake)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestHandshakeHonoursContext(t *testing.T) {
	m, c := key.NewMachine(), key.NewControl()
	a, b := pipe(1)
	defer b.Close()
	tap := &tapConn{MessageConn: a, entered: make(chan string)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := Client(ctx, tap, ClientConfig{Machine: m, Coordinator: c.Public()})
		errc <- err
	}()
	<-tap.entered // write
	<-tap.entered // read: the client now waits for a server that never answers
	cancel()
	err := <-errc
	mustErrorIs(t, err, ErrHandshake, context.Canceled)
}

func TestTimestamp(t *testing.T) {
	for _, ts := range []time.Time{
		fixedNow,
		time.Unix(0, 0),
		time.Unix(-1, 999999999),
		time.Unix(1<<40, 0),
	} {
		got, err := parseTimestamp(appendTimestamp(nil, ts))
		if err != nil || !got.Equal(ts) {
			t.Errorf("round trip of %v = %v, %v", ts, got, err)
		}
	}
	withNanos := func(n uint32) []byte {
		b := appendTimestamp(nil, fixedNow)[:8]
		return append(b, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	if _, err := parseTimestamp(withNanos(999999999)); err != nil {
		t.Errorf("999999999 ns refused: %v", err)
	}
	bad := []struct {
		name string
		b    []byte
	}{
		{"short", make([]byte, 11)},
		{"long", make([]byte, 13)},
		{"zero label", make([]byte, 12)},
		{"nanoseconds overflow", withNanos(1e9)},
		{"far future", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}},
		{"beyond range", appendTimestamp(nil, time.Unix(1<<40+1, 0))},
	}
	for _, tt := range bad {
		if got, err := parseTimestamp(tt.b); err == nil {
			t.Errorf("%s: parseTimestamp(%x) = %v, want an error", tt.name, tt.b, got)
		}
	}
}
