// Package testmesh runs a whole Warren mesh inside one test process: a real
// coordinator (SQLite in a temporary directory, real HTTP and websockets on
// loopback) and any number of nodes. Later parts (data plane, relay,
// policy, interactive login) add themselves to the same harness.
//
// It is for tests only: it trusts its caller, uses short timeouts, and must
// clean up everything it starts when the test ends.
package testmesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/tstest/oidctest"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/controlclient"
	"github.com/warrenmesh/warren/node/engine"
)

// WritePolicy replaces the policy file the way an admin's editor does
// (write a temporary file, rename it over the old one). The coordinator's
// watcher picks it up; the caller waits for the effect it expects.
func (m *Mesh) WritePolicy(src string) {
	m.t.Helper()
	tmp := m.PolicyPath + ".tmp"
	if err := os.WriteFile(tmp, []byte(src), 0o600); err != nil {
		m.t.Fatalf("testmesh: write policy: %v", err)
	}
	if err := os.Rename(tmp, m.PolicyPath); err != nil {
		m.t.Fatalf("testmesh: write policy: %v", err)
	}
}

// Admin is the actor the harness uses for admin changes.
var Admin = registry.Actor{Name: "test:admin", Admin: true}

// Options tune a mesh.
type Options struct {
	// Coordinator overrides coordinator settings; StateDir is set by the
	// harness when empty.
	Coordinator coordinator.Config
	// Verbose logs to stderr at debug level.
	Verbose bool
	// Policy is the policy file's content; empty means the coordinator's
	// default (each user reaches their own nodes).
	Policy string
	// OIDC, if set, starts an OpenID Provider (Mesh.OP) and lets users sign
	// in there; see login.go.
	OIDC *OIDCOptions
	// LocalLogin lets local users sign in (password and TOTP). With OIDC
	// as well, the sign-in URL leads to a page offering both.
	LocalLogin bool
}

// Mesh is a coordinator serving on loopback plus the nodes a test adds.
type Mesh struct {
	t     testing.TB
	Coord *coordinator.Coordinator
	URL   string // base URL of the coordinator's public endpoints
	srv   *httptest.Server
	log   *slog.Logger
	// PolicyPath is the coordinator's policy file.
	PolicyPath string
	// OP is the OpenID Provider users sign in at (with Options.OIDC).
	OP *oidctest.Provider

	cfg     coordinator.Config         // what Coord was started with (see Restart)
	handler atomic.Pointer[handlerBox] // serves srv: the running coordinator's handler
	mu      sync.Mutex                 // guards Coord during Restart
}

// New starts a coordinator for t and stops it when t ends.
func New(t testing.TB, opts Options) *Mesh {
	t.Helper()
	cfg := opts.Coordinator
	if cfg.StateDir == "" {
		cfg.StateDir = t.TempDir()
	}
	if cfg.PolicyPath == "" {
		cfg.PolicyPath = filepath.Join(cfg.StateDir, "policy.hujson")
	}
	if opts.Policy != "" {
		if err := os.WriteFile(cfg.PolicyPath, []byte(opts.Policy), 0o600); err != nil {
			t.Fatalf("testmesh: write policy: %v", err)
		}
	}
	log := slog.New(slog.DiscardHandler)
	if opts.Verbose || os.Getenv("WARREN_TEST_VERBOSE") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if cfg.Logger == nil {
		cfg.Logger = log.With("part", "coordinator")
	}
	// The listener comes first: the embedded relay's URL goes into the
	// DERP map the coordinator builds.
	srv := httptest.NewUnstartedServer(nil)
	if cfg.Relay.URL == "" && !cfg.Relay.Disable {
		cfg.Relay.URL = "http://" + srv.Listener.Addr().String() + coordinator.RelayPath
		if cfg.Relay.STUNListen == "" {
			cfg.Relay.STUNListen = "127.0.0.1:0"
		}
	}
	// So does the coordinator's public URL, which interactive login needs.
	op := setupLogin(t, &cfg, opts, "http://"+srv.Listener.Addr().String())
	c, err := coordinator.New(context.Background(), cfg)
	if err != nil {
		srv.Close()
		t.Fatalf("testmesh: start coordinator: %v", err)
	}
	m := &Mesh{t: t, Coord: c, srv: srv, log: log, PolicyPath: cfg.PolicyPath, OP: op, cfg: cfg}
	m.handler.Store(&handlerBox{c.Handler()})
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { m.handler.Load().ServeHTTP(w, r) })
	srv.Start()
	m.URL = srv.URL
	t.Cleanup(func() {
		m.coordinator().Close() // closes control channels before the HTTP server waits on them
		srv.Close()
	})
	return m
}

// User creates a user.
func (m *Mesh) User(name string, groups ...string) store.User {
	m.t.Helper()
	u, err := m.Coord.Registry().CreateUser(context.Background(), Admin, store.User{Name: name, Email: name, Groups: groups})
	if err != nil {
		m.t.Fatalf("testmesh: create user %s: %v", name, err)
	}
	return u
}

// AuthKey creates a pre-auth key and returns its plaintext.
func (m *Mesh) AuthKey(req registry.AuthKeyRequest) string {
	m.t.Helper()
	_, plain, err := m.Coord.Registry().CreateAuthKey(context.Background(), Admin, req)
	if err != nil {
		m.t.Fatalf("testmesh: create auth key: %v", err)
	}
	return plain
}

// Identity is a node's keys; reuse one to restart a node as itself.
type Identity struct {
	Machine key.MachinePrivate
	Node    key.NodePrivate
	Disco   key.DiscoPrivate
}

// NewIdentity returns fresh keys.
func NewIdentity() Identity {
	return Identity{Machine: key.NewMachine(), Node: key.NewNode(), Disco: key.NewDisco()}
}

// Node is a node's control client running in the harness.
type Node struct {
	Name   string
	ID     Identity
	Client *controlclient.Client

	dataPlane bool
	relayOnly bool
	port      uint16
	opts      NodeOptions
	log       *slog.Logger

	mu      sync.Mutex
	engine  *engine.Engine // with DataPlane, once the first netmap arrived
	nm      *controlclient.Netmap
	changed chan struct{} // closed and replaced on every netmap (and sign-in URL)
	cancel  context.CancelFunc
	done    chan struct{}
	err     error

	loginURL string // the latest sign-in URL the coordinator gave; guarded by mu
}

// NodeOptions tune a node.
type NodeOptions struct {
	Identity *Identity // nil: fresh keys
	AuthKey  string
	Tags     []string
	// DataPlane runs a real WireGuard data plane (userspace netstack) that
	// follows the netmap, reachable through Node.Dial and Node.Listen.
	DataPlane bool
	// RelayOnly makes the data plane use relays only (no direct paths).
	RelayOnly bool
	// ListenPort is the data plane's UDP port (0: any free one).
	ListenPort uint16
	// FlowSink, FlowInterval and FlowUpdate are the data plane's flow log
	// settings (engine.Config); nil FlowSink: no flow logs.
	FlowSink     func([]wire.FlowRecord)
	FlowInterval time.Duration
	FlowUpdate   time.Duration
	// ControlURL, if set, is where the node reaches the coordinator
	// instead of Mesh.URL (a proxy a test can cut).
	ControlURL string
	// Flows is the node's spool of flow records to send (nil: none).
	Flows controlclient.FlowSpool
	// MinBackoff and MaxBackoff bound the control client's reconnect
	// waits; zero means the harness's short ones (20 ms and 200 ms). A
	// failover test sets the production defaults (1 s and 30 s).
	MinBackoff, MaxBackoff time.Duration
}

// AddNode starts a node's control client; it is stopped when the test
// ends (or by Stop).
func (m *Mesh) AddNode(hostname string, o NodeOptions) *Node {
	m.t.Helper()
	url := m.URL
	if o.ControlURL != "" {
		url = o.ControlURL
	}
	return join(m.t, m.log, url, m.Coord.PublicKey(), hostname, o)
}

// Join starts a node of a coordinator the harness did not start (a
// coordinator process, or replicas behind a load balancer at url), which
// the node reaches at url and pins by controlKey. It is stopped when the
// test ends (or by Stop).
func Join(t testing.TB, url string, controlKey key.ControlPublic, hostname string, o NodeOptions) *Node {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("WARREN_TEST_VERBOSE") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return join(t, log, url, controlKey, hostname, o)
}

func join(t testing.TB, log *slog.Logger, url string, controlKey key.ControlPublic, hostname string, o NodeOptions) *Node {
	t.Helper()
	id := NewIdentity()
	if o.Identity != nil {
		id = *o.Identity
	}
	n := &Node{Name: hostname, ID: id, changed: make(chan struct{}), done: make(chan struct{}),
		dataPlane: o.DataPlane, relayOnly: o.RelayOnly, port: o.ListenPort, opts: o, log: log.With("part", "node", "node", hostname)}
	if o.MinBackoff == 0 {
		o.MinBackoff, o.MaxBackoff = 20*time.Millisecond, 200*time.Millisecond
	}
	cc, err := controlclient.New(controlclient.Config{
		URL: url, Flows: o.Flows, ControlKey: controlKey, Machine: id.Machine, NodeKey: id.Node.Public(),
		DiscoKey: id.Disco.Public(), Hostname: hostname, OS: "linux", AuthKey: o.AuthKey, Tags: o.Tags,
		OnNetmap: n.onNetmap, OnLoginURL: n.onLoginURL, Logger: n.log,
		MinBackoff: o.MinBackoff, MaxBackoff: o.MaxBackoff,
	})
	if err != nil {
		t.Fatalf("testmesh: node %s: %v", hostname, err)
	}
	n.Client = cc
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() {
		defer close(n.done)
		err := cc.Run(ctx)
		n.mu.Lock()
		n.err = err
		close(n.changed)
		n.changed = make(chan struct{})
		n.mu.Unlock()
	}()
	t.Cleanup(n.Stop)
	return n
}

func (n *Node) onNetmap(nm *controlclient.Netmap) {
	if n.dataPlane {
		n.applyDataPlane(nm)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.nm = nm
	close(n.changed)
	n.changed = make(chan struct{})
}

// applyDataPlane starts the engine on the first netmap (the node's
// addresses come with it) and applies every netmap to it.
func (n *Node) applyDataPlane(nm *controlclient.Netmap) {
	n.mu.Lock()
	eng := n.engine
	n.mu.Unlock()
	if eng == nil {
		var err error
		eng, err = engine.New(engine.Config{NodeKey: n.ID.Node, DiscoKey: n.ID.Disco, Addresses: nm.Self.Addresses, ListenPort: n.port,
			LocalEndpoints: func(port uint16) []netip.AddrPort {
				return []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)}
			},
			OnEndpoints: n.Client.SetEndpoints, RelayOnly: n.relayOnly, Logger: n.log,
			FlowSink: n.opts.FlowSink, FlowInterval: n.opts.FlowInterval, FlowUpdate: n.opts.FlowUpdate})
		if err != nil {
			n.log.Error("start data plane", "err", err)
			return
		}
		n.mu.Lock()
		n.engine = eng
		n.mu.Unlock()
	}
	eng.SetDERPMap(nm.DERPMap)
	eng.SetSelf(nm.Self)
	if err := eng.SetNetmap(nm.Peers, nm.PacketFilter); err != nil {
		n.log.Error("apply netmap to data plane", "err", err)
	}
}

// Engine returns the node's data plane, or nil (no DataPlane option, or no
// netmap yet).
func (n *Node) Engine() *engine.Engine {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.engine
}

// Stop stops the node's client and data plane and waits for them.
func (n *Node) Stop() {
	n.cancel()
	<-n.done
	n.mu.Lock()
	eng := n.engine
	n.engine = nil
	n.mu.Unlock()
	if eng != nil {
		eng.Close()
	}
}

// Err returns why the client stopped (nil while running).
func (n *Node) Err() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.err
}

// Netmap returns the node's latest netmap (nil before the first).
func (n *Node) Netmap() *controlclient.Netmap {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nm
}

// ErrStopped is returned by WaitFor when the client stopped first.
var ErrStopped = errors.New("testmesh: node client stopped")

// WaitFor waits until cond holds for the node's netmap, the client stops,
// or timeout passes.
func (n *Node) WaitFor(timeout time.Duration, cond func(*controlclient.Netmap) bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		n.mu.Lock()
		nm, ch, err := n.nm, n.changed, n.err
		n.mu.Unlock()
		if nm != nil && cond(nm) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrStopped, err)
		}
		select {
		case <-ch:
		case <-deadline.C:
			return fmt.Errorf("testmesh: %s: condition not met within %v (last netmap: %s)", n.Name, timeout, Describe(nm))
		}
	}
}

// WaitErr waits until the client stops and returns its error.
func (n *Node) WaitErr(timeout time.Duration) error {
	select {
	case <-n.done:
		return n.Err()
	case <-time.After(timeout):
		return fmt.Errorf("testmesh: %s still running after %v", n.Name, timeout)
	}
}

// HasPeers reports whether the netmap's peers are exactly the given
// hostnames.
func HasPeers(hostnames ...string) func(*controlclient.Netmap) bool {
	return func(nm *controlclient.Netmap) bool {
		if len(nm.Peers) != len(hostnames) {
			return false
		}
		want := make(map[string]bool)
		for _, h := range hostnames {
			want[h] = true
		}
		for _, p := range nm.Peers {
			if !want[p.Hostname] {
				return false
			}
		}
		return true
	}
}

// Describe summarises a netmap for failure messages.
func Describe(nm *controlclient.Netmap) string {
	if nm == nil {
		return "none"
	}
	s := fmt.Sprintf("v%d self=%s peers=[", nm.Version, nm.Self.Hostname)
	for i, p := range nm.Peers {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%s(online=%v)", p.Hostname, p.Online)
	}
	return s + "]"
}
