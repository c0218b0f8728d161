package control

import (
	"context"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/netmap"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/noise"
	"github.com/warrenmesh/warren/internal/policy"
	"github.com/warrenmesh/warren/internal/wire"
)

// TestMain checks that the control server leaves no goroutine behind once
// closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// wait bounds every wait in these tests; it is a failure bound, never a
// measurement.
const wait = 20 * time.Second

// allowAll lets every node reach every other.
const allowAll = `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}`

var testAdmin = registry.Actor{Name: "local:test", Admin: true, Remote: "test"}

// harness is a control Server over a real SQLite store, registry and
// netmap engine, serving its handler on a loopback listener.
type harness struct {
	t        testing.TB
	srv      *Server
	reg      *registry.Registry
	st       store.Store
	engine   *netmap.Engine
	failures *audit.Failures
	key      key.ControlPrivate
	url      string // ws://127.0.0.1:port
	authKey  string // a reusable pre-auth key of ann
	ann      store.User
}

func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "warren.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Parse([]byte(allowAll))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, st: st, failures: audit.NewFailures(nil, 0), key: key.NewControl()}
	h.engine = netmap.New(netmap.Config{Domain: "warren.internal", Policy: p})
	runCtx, stopEngine := context.WithCancel(ctx)
	engineDone := make(chan struct{})
	go func() {
		defer close(engineDone)
		_ = h.engine.Run(runCtx)
	}()
	log := audit.New(st, nil)
	h.reg, err = registry.New(ctx, registry.Config{Store: st, Engine: h.engine, Audit: log, Failures: h.failures})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Key, cfg.Registry, cfg.Engine, cfg.Audit, cfg.Failures = h.key, h.reg, h.engine, log, h.failures
	h.srv, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h.srv.Handler())
	h.url = "ws" + strings.TrimPrefix(hs.URL, "http")
	t.Cleanup(func() {
		h.srv.Close() // ends every channel, so the listener closes at once
		hs.Close()
		stopEngine()
		<-engineDone
		h.reg.Close()
		st.Close()
	})
	h.ann, err = h.reg.CreateUser(ctx, testAdmin, store.User{Name: "ann@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	_, h.authKey, err = h.reg.CreateAuthKey(ctx, testAdmin, registry.AuthKeyRequest{UserID: h.ann.ID, Reusable: true})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// node is the node side of one control channel, as a test drives it.
type node struct {
	t       testing.TB
	conn    *noise.Conn
	machine key.MachinePrivate
	req     wire.RegisterRequest
	id      wire.NodeID
	version uint64                    // of the last map response
	peers   map[wire.NodeID]wire.Node // the node's view of its peers
}

// dial opens a websocket to the control path and returns it unwrapped.
func (h *harness) dial() *websocket.Conn {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, h.url+ControlPath, &websocket.DialOptions{Subprotocols: []string{Subprotocol}})
	if err != nil {
		h.t.Fatal(err)
	}
	return ws
}

// handshake opens a control channel as machine, pinning coord, with the
// handshake stamped by now (nil: the clock).
func (h *harness) handshake(machine key.MachinePrivate, coord key.ControlPublic, now func() time.Time) (*noise.Conn, error) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return noise.Client(ctx, noise.WebSocket(h.dial()), noise.ClientConfig{Machine: machine, Coordinator: coord, Now: now})
}

// connect completes the handshake as a fresh machine.
func (h *harness) connect() *node {
	h.t.Helper()
	m := key.NewMachine()
	conn, err := h.handshake(m, h.key.Public(), nil)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { conn.Close() })
	return &node{t: h.t, conn: conn, machine: m, peers: map[wire.NodeID]wire.Node{},
		req: wire.RegisterRequest{Version: wire.ProtocolVersion, NodeKey: key.NewNode().Public(),
			DiscoKey: key.NewDisco().Public(), Hostname: "n", OS: "linux", AuthKey: h.authKey}}
}

// join connects a fresh machine, registers it with ann's key and asks for
// a streamed map announcing eps; it returns once the full map arrived.
func (h *harness) join(eps ...string) *node {
	h.t.Helper()
	n := h.connect()
	n.register()
	n.send(&wire.MapRequest{Stream: true, Endpoints: addrPorts(eps...)})
	m := n.nextMap()
	if !m.Full || m.Self == nil || m.Self.ID != n.id {
		n.t.Fatalf("first map response: %+v", m)
	}
	return n
}

// register sends the node's registration and expects it accepted.
func (n *node) register() {
	n.t.Helper()
	n.send(&n.req)
	m := n.recv()
	r, ok := m.(*wire.RegisterResponse)
	if !ok || !r.Authorized || r.Self == nil {
		n.t.Fatalf("registration answered %+v", m)
	}
	n.id = r.Self.ID
}

func (n *node) send(m wire.Message) {
	n.t.Helper()
	if err := wire.WriteMessage(n.conn, m); err != nil {
		n.t.Fatalf("send %v: %v", m.WireType(), err)
	}
}

// recvErr reads the coordinator's next message; the channel is closed
// (failing the read) if none comes within wait.
func (n *node) recvErr() (wire.Message, error) {
	bound := time.AfterFunc(wait, func() { n.conn.Close() })
	defer bound.Stop()
	return wire.ReadMessage(n.conn, wire.MaxCoordinatorMessage)
}

func (n *node) recv() wire.Message {
	n.t.Helper()
	m, err := n.recvErr()
	if err != nil {
		n.t.Fatalf("read: %v", err)
	}
	return m
}

// nextMap returns the next map response, skipping keep-alives, and
// applies it to the node's view of its peers. Versions must go up by one.
func (n *node) nextMap() *wire.MapResponse {
	n.t.Helper()
	for {
		m := n.recv()
		if _, ok := m.(*wire.KeepAlive); ok {
			continue
		}
		r, ok := m.(*wire.MapResponse)
		if !ok {
			n.t.Fatalf("want a map response, got %+v", m)
		}
		if n.version != 0 && r.Version != n.version+1 {
			n.t.Fatalf("map version %d after %d", r.Version, n.version)
		}
		n.version = r.Version
		if r.Full {
			clear(n.peers)
			for _, p := range r.Peers {
				n.peers[p.ID] = p
			}
		}
		for _, p := range r.PeersChanged {
			n.peers[p.ID] = p
		}
		for _, id := range r.PeersRemoved {
			delete(n.peers, id)
		}
		for i := range r.PeersPatched {
			p := &r.PeersPatched[i]
			if peer, ok := n.peers[p.ID]; ok {
				peer.Apply(p)
				n.peers[p.ID] = peer
			}
		}
		return r
	}
}

// waitPeer reads map responses until the node's view of peer id
// satisfies ok (present is false when the node does not know the peer).
func (n *node) waitPeer(id wire.NodeID, ok func(p wire.Node, present bool) bool) wire.Node {
	n.t.Helper()
	for {
		p, present := n.peers[id]
		if ok(p, present) {
			return p
		}
		n.nextMap()
	}
}

// closed reports whether the coordinator closes the channel (after
// whatever it sends meanwhile) within wait, and returns the last
// error message it sent.
func (n *node) closed() (*wire.Error, bool) {
	bound := time.AfterFunc(wait, func() { n.conn.Close() })
	var last *wire.Error
	for {
		m, err := wire.ReadMessage(n.conn, wire.MaxCoordinatorMessage)
		if err != nil {
			return last, bound.Stop() // false: the test's bound closed it
		}
		if e, ok := m.(*wire.Error); ok {
			last = e
		}
	}
}

func addrPorts(ss ...string) []netip.AddrPort {
	out := make([]netip.AddrPort, 0, len(ss))
	for _, s := range ss {
		out = append(out, netip.MustParseAddrPort(s))
	}
	return out
}

// auditActions returns the stored audit events' actions with outcome.
func (h *harness) auditActions(outcome string) []string {
	h.t.Helper()
	evs, err := h.st.ListAudit(context.Background(), store.AuditFilter{})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		if e.Outcome == outcome {
			out = append(out, e.Action)
		}
	}
	return out
}
