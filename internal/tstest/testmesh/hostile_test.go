package testmesh

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/noise"
	"github.com/warrenmesh/warren/internal/wire"
)

// recorder is a MessageConn that keeps a copy of what it sends.
type recorder struct {
	noise.MessageConn
	mu   sync.Mutex
	sent [][]byte
}

func (r *recorder) WriteMessage(ctx context.Context, b []byte) error {
	r.mu.Lock()
	r.sent = append(r.sent, append([]byte(nil), b...))
	r.mu.Unlock()
	return r.MessageConn.WriteMessage(ctx, b)
}

// dial opens a raw websocket to the coordinator's control endpoint.
func dial(t *testing.T, m *Mesh) noise.MessageConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, m.URL+"/control", &websocket.DialOptions{Subprotocols: []string{"warren-control-v1"}})
	if err != nil {
		t.Fatal(err)
	}
	mc := noise.WebSocket(ws)
	t.Cleanup(func() { mc.Close() })
	return mc
}

// handshake dials and completes the Noise handshake as a fresh machine.
func handshake(t *testing.T, m *Mesh) (*noise.Conn, *recorder) {
	t.Helper()
	rec := &recorder{MessageConn: dial(t, m)}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	conn, err := noise.Client(ctx, rec, noise.ClientConfig{Machine: key.NewMachine(), Coordinator: m.Coord.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, rec
}

// expectError reads until the coordinator's wire.Error and checks its code.
func expectError(t *testing.T, conn *noise.Conn, code wire.ErrorCode) {
	t.Helper()
	done := time.AfterFunc(wait, func() { conn.Close() })
	defer done.Stop()
	for {
		m, err := wire.ReadMessage(conn, wire.MaxCoordinatorMessage)
		if err != nil {
			t.Fatalf("channel ended without a %s error: %v", code, err)
		}
		if e, ok := m.(*wire.Error); ok {
			if e.Code != code {
				t.Fatalf("got error %v, want code %s", e, code)
			}
			t.Logf("coordinator said: %v", e)
			// Then the coordinator closes the channel.
			if _, err := wire.ReadMessage(conn, wire.MaxCoordinatorMessage); err == nil {
				t.Fatal("channel still open after the error")
			}
			return
		}
	}
}

func auditCount(t *testing.T, m *Mesh, action, outcome string) int {
	t.Helper()
	events, err := m.Coord.Store().ListAudit(context.Background(), store.AuditFilter{Action: action})
	must(t, err)
	n := 0
	for _, e := range events {
		if e.Outcome == outcome {
			n++
		}
	}
	return n
}

func TestHostileControlInput(t *testing.T) {
	m := New(t, Options{})
	oversized := make([]byte, wire.HeaderSize)
	oversized[0], oversized[1] = wire.FrameVersion, byte(wire.TypeRegisterRequest)
	binary.BigEndian.PutUint32(oversized[2:], 10<<20)

	tests := []struct {
		name string
		send []byte
		code wire.ErrorCode
	}{
		{"oversized frame", oversized, wire.CodeBadRequest},
		{"unknown frame version", []byte{9, 1, 0, 0, 0, 2, '{', '}'}, wire.CodeBadRequest},
		{"unknown message type", []byte{1, 99, 0, 0, 0, 2, '{', '}'}, wire.CodeBadRequest},
		{"malformed JSON", []byte{1, 1, 0, 0, 0, 3, '{', '{', '{'}, wire.CodeBadRequest},
		{"map request before registration", wire.EncodeRaw(wire.TypeMapRequest, []byte(`{"stream":true}`)), wire.CodeBadRequest},
		{"unsupported protocol version", wire.EncodeRaw(wire.TypeRegisterRequest, []byte(`{"version":999}`)), wire.CodeVersion},
		{"missing keys", wire.EncodeRaw(wire.TypeRegisterRequest, []byte(`{"version":1,"hostname":"x"}`)), wire.CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, _ := handshake(t, m)
			if _, err := conn.Write(tt.send); err != nil {
				t.Fatal(err)
			}
			expectError(t, conn, tt.code)
		})
	}
	nodes, err := m.Coord.Store().ListNodes(context.Background())
	must(t, err)
	if len(nodes) != 0 {
		t.Fatalf("hostile input registered %d nodes", len(nodes))
	}
	// Nobody the coordinator knows sent these: counted, never stored.
	checkFailures(t, m, "control.register", len(tests)-1)
	checkFailures(t, m, "node.register", 1)
}

func TestWrongCoordinatorKey(t *testing.T) {
	m := New(t, Options{})
	mc := dial(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, err := noise.Client(ctx, mc, noise.ClientConfig{Machine: key.NewMachine(), Coordinator: key.NewControl().Public()})
	if !errors.Is(err, noise.ErrHandshake) {
		t.Fatalf("handshake against the wrong key: %v", err)
	}
	t.Logf("node saw: %v", err)
	checkFailures(t, m, "control.handshake", 1)
}

func TestReplayedHandshake(t *testing.T) {
	m := New(t, Options{})
	_, rec := handshake(t, m)
	rec.mu.Lock()
	first := rec.sent[0]
	rec.mu.Unlock()
	// An eavesdropper replays the captured handshake on a new connection.
	mc := dial(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	must(t, mc.WriteMessage(ctx, first))
	if b, err := mc.ReadMessage(ctx); err == nil {
		t.Fatalf("coordinator answered a replayed handshake with %d bytes", len(b))
	}
	checkFailures(t, m, "control.handshake", 1)
}

// checkFailures checks that n unauthenticated failures of kind were
// counted, and none was written to the audit log. Like checkAudit, no
// waiting is needed: the coordinator counts before it closes.
func checkFailures(t *testing.T, m *Mesh, kind string, n int) {
	t.Helper()
	if got := m.Coord.Failures().Counts()[kind]; got != uint64(n) {
		t.Fatalf("%d %s failures counted, want %d", got, kind, n)
	}
	checkAudit(t, m, kind, "denied", 0)
}

// checkAudit checks that n audit events of action have outcome. The
// coordinator records them before it closes the connection the test saw
// fail, so no waiting is needed.
func checkAudit(t *testing.T, m *Mesh, action, outcome string, n int) {
	t.Helper()
	if got := auditCount(t, m, action, outcome); got != n {
		t.Fatalf("%d %s %s audit events, want %d", got, outcome, action, n)
	}
}
