package control

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/warrenmesh/warren/coordinator/auth"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/wire"
)

// The key endpoint tells nodes which key to pin and which protocol the
// coordinator speaks.
func TestKeyEndpoint(t *testing.T) {
	h := newHarness(t, Config{})
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: wait}
	resp, err := hc.Get("http" + strings.TrimPrefix(h.url, "ws") + KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got KeyResponse
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.Key != h.key.Public() || got.ProtocolVersion != wire.ProtocolVersion {
		t.Fatalf("key endpoint: %+v, want %v and version %d", got, h.key.Public(), wire.ProtocolVersion)
	}
}

// Only a node that pins the coordinator's key and presents a fresh
// handshake gets a channel; every failed handshake is counted, none is
// audited (anyone can cause any number).
func TestHandshake(t *testing.T) {
	h := newHarness(t, Config{})
	if _, err := h.handshake(key.NewMachine(), key.NewControl().Public(), nil); err == nil {
		t.Error("a handshake pinning another coordinator key succeeded")
	}

	m := key.NewMachine()
	stamp := time.Now()
	fixed := func() time.Time { return stamp }
	conn, err := h.handshake(m, h.key.Public(), fixed)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	conn.Close()
	if _, err := h.handshake(m, h.key.Public(), fixed); err == nil {
		t.Error("a replayed handshake succeeded")
	}

	ws := h.dial()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := ws.Write(ctx, websocket.MessageBinary, []byte("not a noise handshake")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ws.Read(ctx); err == nil || ctx.Err() != nil {
		t.Errorf("garbage instead of a handshake: read %v (context %v), want the channel closed", err, ctx.Err())
	}
	ws.CloseNow()

	if got := h.failures.Counts()["control.handshake"]; got != 3 {
		t.Errorf("%d failed handshakes counted, want 3", got)
	}
	if got := h.auditActions("denied"); len(got) != 0 {
		t.Errorf("failed handshakes audited: %v", got)
	}
}

// A registered node's map request starts its stream: the full map, then
// deltas as peers join, move and leave. Endpoints the nodes report reach
// the registry (stored) and their peers (patched), without the ones no
// peer could use.
func TestStreamAndEndpoints(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, Config{})
	a := h.join("192.0.2.1:41641")
	b := h.join("192.0.2.2:41641")

	bOnA := a.waitPeer(b.id, func(p wire.Node, present bool) bool { return present && p.Online && len(p.Endpoints) == 1 })
	if bOnA.Endpoints[0].String() != "192.0.2.2:41641" || bOnA.NodeKey != b.req.NodeKey {
		t.Fatalf("a sees b as %+v", bOnA)
	}
	if aOnB, ok := b.peers[a.id]; !ok || !aOnB.Online || len(aOnB.Endpoints) != 1 || aOnB.Endpoints[0].String() != "192.0.2.1:41641" {
		t.Fatalf("b's full map has a as %+v (present %v)", aOnB, ok)
	}

	b.send(&wire.UpdateRequest{HomeRelay: 900,
		Endpoints: addrPorts("198.51.100.2:5000", "0.0.0.0:1", "198.51.100.3:0", "[ff02::1]:5", "[2001:db8::2]:5000")})
	want := []string{"198.51.100.2:5000", "[2001:db8::2]:5000"}
	endpoints := func(p wire.Node) []string {
		var out []string
		for _, ep := range p.Endpoints {
			out = append(out, ep.String())
		}
		return out
	}
	bOnA = a.waitPeer(b.id, func(p wire.Node, _ bool) bool { return slices.Equal(endpoints(p), want) })
	if bOnA.HomeRelay != 900 {
		t.Fatalf("a sees b's home relay %d, want 900", bOnA.HomeRelay)
	}

	// The channel handles b's messages in order: once its logout is
	// answered, the update before it is stored.
	b.send(&wire.LogoutRequest{})
	if e, ok := b.closed(); !ok || e == nil || e.Code != wire.CodeLoggedOut {
		t.Fatalf("logout: channel closed %v, last error %+v", ok, e)
	}
	stored, err := h.st.GetNode(ctx, store.NodeID(b.id))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ep := range stored.Endpoints {
		got = append(got, ep.String())
	}
	if !slices.Equal(got, want) || stored.HomeRelay != 900 || stored.KeyExpiry.After(time.Now()) || stored.LastSeen.IsZero() {
		t.Fatalf("stored b: endpoints %v, home relay %d, key expiry %v, last seen %v", got, stored.HomeRelay, stored.KeyExpiry, stored.LastSeen)
	}
	a.waitPeer(b.id, func(p wire.Node, present bool) bool { return !present || !p.Online })
}

// Refusals before the registry has let a machine in: each tells the node
// why, closes the channel, and is counted, never audited (a fresh machine
// key costs nothing).
func TestRefusedBeforeRegistration(t *testing.T) {
	unknownKey, _, _ := auth.NewSecret(auth.AuthKeyPrefix)
	tests := []struct {
		name    string
		send    func(n *node)
		code    wire.ErrorCode
		counted string // the failure kind counted
	}{
		{"map request first", func(n *node) { n.send(&wire.MapRequest{Stream: true}) }, wire.CodeBadRequest, "control.register"},
		{"protocol version too old", func(n *node) { n.req.Version = wire.MinProtocolVersion - 1; n.send(&n.req) }, wire.CodeVersion, "control.register"},
		{"protocol version too new", func(n *node) { n.req.Version = wire.ProtocolVersion + 1; n.send(&n.req) }, wire.CodeVersion, "control.register"},
		{"oversized frame", func(n *node) { n.sendHeader(wire.FrameVersion, wire.TypeRegisterRequest, wire.MaxNodeMessage+1) }, wire.CodeBadRequest, "control.register"},
		{"unknown message type", func(n *node) { n.sendFrame(wire.FrameVersion, 0xee, "{}") }, wire.CodeBadRequest, "control.register"},
		{"unknown frame version", func(n *node) { n.sendFrame(wire.FrameVersion+1, wire.TypeRegisterRequest, "{}") }, wire.CodeBadRequest, "control.register"},
		{"not JSON", func(n *node) { n.sendFrame(wire.FrameVersion, wire.TypeRegisterRequest, "{") }, wire.CodeBadRequest, "control.register"},
		{"malformed registration", func(n *node) { n.req.Hostname = ""; n.send(&n.req) }, wire.CodeBadRequest, "node.register"},
		{"key never issued", func(n *node) { n.req.AuthKey = unknownKey; n.send(&n.req) }, wire.CodeUnauthorized, "node.register"},
		{"no key and no login", func(n *node) { n.req.AuthKey = ""; n.send(&n.req) }, wire.CodeUnauthorized, "node.register"},
	}
	h := newHarness(t, Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.failures.Counts()[tt.counted]
			n := h.connect()
			tt.send(n)
			e, ok := n.closed()
			if !ok {
				t.Fatal("channel still open")
			}
			if e == nil || e.Code != tt.code {
				t.Fatalf("told %+v, want code %s", e, tt.code)
			}
			if got := h.failures.Counts()[tt.counted]; got != before+1 {
				t.Fatalf("%s counted %d times, want %d", tt.counted, got, before+1)
			}
		})
	}
	if got := h.auditActions("denied"); len(got) != 0 {
		t.Fatalf("refusals of unknown machines audited: %v", got)
	}
	if nodes, _ := h.st.ListNodes(context.Background()); len(nodes) != 0 {
		t.Fatalf("refused machines stored: %+v", nodes)
	}
}

// A client that completes the handshake and sends nothing is cut after
// the first-message bound, and counted.
func TestFirstMessageBound(t *testing.T) {
	h := newHarness(t, Config{HandshakeTimeout: 2 * time.Second})
	n := h.connect()
	if e, ok := n.closed(); !ok || e != nil {
		t.Fatalf("silent client: closed %v, told %+v", ok, e)
	}
	if got := h.failures.Counts()["control.silent"]; got != 1 {
		t.Fatalf("%d silent clients counted, want 1", got)
	}
	if got := h.auditActions("denied"); len(got) != 0 {
		t.Fatalf("a silent client was audited: %v", got)
	}
}

// Once a machine is registered its protocol violations are audited, and
// an admin's deletion and the node's own logout end its channel with the
// reason.
func TestRefusedAfterRegistration(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		stream  bool // the node has its stream before do
		do      func(h *harness, n *node)
		code    wire.ErrorCode
		audited string // the action audited as denied ("" none)
	}{
		{"registration again instead of a map request", false,
			func(_ *harness, n *node) { n.send(&n.req) }, wire.CodeBadRequest, "control.map"},
		{"oversized frame while streaming", true,
			func(_ *harness, n *node) {
				n.sendHeader(wire.FrameVersion, wire.TypeUpdateRequest, wire.MaxNodeMessage+1)
			},
			wire.CodeBadRequest, "control.update"},
		{"registration while streaming", true,
			func(_ *harness, n *node) { n.send(&n.req) }, wire.CodeBadRequest, "control.update"},
		{"deleted by an admin", true,
			func(h *harness, n *node) {
				if err := h.reg.DeleteNode(ctx, testAdmin, store.NodeID(n.id)); err != nil {
					h.t.Fatal(err)
				}
			}, wire.CodeNodeRemoved, ""},
		{"logged out", true,
			func(_ *harness, n *node) { n.send(&wire.LogoutRequest{}) }, wire.CodeLoggedOut, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			var n *node
			if tt.stream {
				n = h.join()
			} else {
				n = h.connect()
				n.register()
			}
			tt.do(h, n)
			e, ok := n.closed()
			if !ok || e == nil || e.Code != tt.code {
				t.Fatalf("closed %v, told %+v; want code %s", ok, e, tt.code)
			}
			var want []string
			if tt.audited != "" {
				want = []string{tt.audited}
			}
			if got := h.auditActions("denied"); !slices.Equal(got, want) {
				t.Fatalf("denied events %v, want %v", got, want)
			}
			if got := h.failures.Counts(); len(got) != 0 {
				t.Fatalf("a known node's refusal counted as unauthenticated: %v", got)
			}
		})
	}
}

// keepAliveEvery is short, but a healthy node is cut only if it goes
// unscheduled for SilenceKeepAlives whole periods.
const keepAliveEvery = 200 * time.Millisecond

// A streaming node that answers keep-alives stays; one of protocol
// version 2 that answers none is cut after SilenceKeepAlives; a version-1
// node, which never answers, is not held to it.
func TestKeepAlives(t *testing.T) {
	tests := []struct {
		name    string
		version int
		answer  bool
		cut     bool
	}{
		{"answers", wire.ProtocolVersion, true, false},
		{"silent", wire.ProtocolVersion, false, true},
		{"version 1", wire.KeepAliveAnswerVersion - 1, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, Config{KeepAlive: keepAliveEvery})
			n := h.connect()
			n.req.Version = tt.version
			n.register()
			n.send(&wire.MapRequest{Stream: true})
			keepAlives := 0
			for keepAlives < 2*SilenceKeepAlives {
				m, err := n.recvErr()
				if err != nil {
					if !tt.cut {
						t.Fatalf("cut after %d keep-alives: %v", keepAlives, err)
					}
					if keepAlives < SilenceKeepAlives {
						t.Fatalf("cut after %d keep-alives, want at least %d", keepAlives, SilenceKeepAlives)
					}
					return
				}
				if _, ok := m.(*wire.KeepAlive); !ok {
					continue
				}
				keepAlives++
				if tt.answer {
					n.send(&wire.KeepAlive{})
				}
			}
			if tt.cut {
				t.Fatalf("still connected after %d unanswered keep-alives", keepAlives)
			}
		})
	}
}

// sendHeader writes a frame header announcing size bytes of type t, and
// no payload.
func (n *node) sendHeader(version byte, t wire.Type, size int) {
	n.t.Helper()
	var b [wire.HeaderSize]byte
	b[0], b[1] = version, byte(t)
	binary.BigEndian.PutUint32(b[2:], uint32(size))
	if _, err := n.conn.Write(b[:]); err != nil {
		n.t.Fatal(err)
	}
}

// sendFrame writes one frame of type t with payload, as is.
func (n *node) sendFrame(version byte, t wire.Type, payload string) {
	n.t.Helper()
	b := wire.EncodeRaw(t, []byte(payload))
	b[0] = version
	if _, err := n.conn.Write(b); err != nil {
		n.t.Fatal(err)
	}
}

// TestCloseWhileChannelsArrive: channels may arrive while the server
// closes (a node reconnecting as the coordinator restarts); Close must
// still wait for every one it let in, and the race detector must see no
// WaitGroup Add racing with its Wait.
func TestCloseWhileChannelsArrive(t *testing.T) {
	h := newHarness(t, Config{})
	for range 20 {
		s, err := New(h.srv.cfg)
		if err != nil {
			t.Fatal(err)
		}
		// One channel is open (its handshake pending) when Close starts, so
		// Close really waits while more arrive.
		hs := httptest.NewServer(s.Handler())
		ws, _, err := websocket.Dial(t.Context(), "ws"+strings.TrimPrefix(hs.URL, "http")+ControlPath, &websocket.DialOptions{Subprotocols: []string{Subprotocol}})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range 200 {
				s.serveControl(httptest.NewRecorder(), httptest.NewRequest("GET", ControlPath, nil))
			}
		}()
		s.Close()
		<-done
		ws.CloseNow()
		hs.Close()
		rec := httptest.NewRecorder()
		s.serveControl(rec, httptest.NewRequest("GET", ControlPath, nil))
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("a channel after Close got %d, want 503", rec.Code)
		}
	}
}
