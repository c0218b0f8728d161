package coordinator_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/control"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/noise"
	"github.com/warrenmesh/warren/internal/wire"
)

// wait bounds every wait in these tests; it is a failure bound, never a
// measurement.
const wait = 20 * time.Second

var admin = registry.Actor{Name: "test:admin", Admin: true}

// served is a real coordinator serving its public handler with ServeHTTP
// on a loopback listener, as warren-coordinator serve does.
type served struct {
	c       *coordinator.Coordinator
	addr    string // host:port of the listener
	url     string
	authKey string // a reusable pre-auth key of a member
}

func serve(t testing.TB, cfg coordinator.Config) *served {
	t.Helper()
	return serveAt(t, cfg, nil)
}

// serveAt is serve with a hook that completes cfg once the listener's URL
// is known (e.g. an OpenID Provider's redirect URL).
func serveAt(t testing.TB, cfg coordinator.Config, hook func(url string, cfg *coordinator.Config)) *served {
	t.Helper()
	if cfg.StateDir == "" {
		cfg.StateDir = t.TempDir()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The embedded relay only when asked for (with a STUN address): it
	// needs the listener's URL.
	if cfg.Relay.STUNListen == "" {
		cfg.Relay.Disable = true
	} else {
		cfg.Relay.URL = "http://" + ln.Addr().String() + coordinator.RelayPath
	}
	if hook != nil {
		hook("http://"+ln.Addr().String(), &cfg)
	}
	if (cfg.Login.Local || cfg.Login.OIDC != nil) && cfg.Login.PublicURL == "" {
		cfg.Login.PublicURL = "http://" + ln.Addr().String()
	}
	ctx := context.Background()
	c, _ := start(t, cfg, ln)
	u, err := c.Registry().CreateUser(ctx, admin, store.User{Name: "ann@example.com", Email: "ann@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	_, plain, err := c.Registry().CreateAuthKey(ctx, admin, registry.AuthKeyRequest{UserID: u.ID, Reusable: true, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return &served{c: c, addr: ln.Addr().String(), url: "http://" + ln.Addr().String(), authKey: plain}
}

// start runs a coordinator with cfg serving its public handler on ln
// until the test ends or stop is called.
func start(t testing.TB, cfg coordinator.Config, ln net.Listener) (_ *coordinator.Coordinator, stop func()) {
	t.Helper()
	ctx := context.Background()
	c, err := coordinator.New(ctx, cfg)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.ServeHTTP(sctx, ln, c.Handler()) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("ServeHTTP: %v", err)
			}
			c.Close()
		})
	}
	t.Cleanup(stop)
	return c, stop
}

// clientFrom returns an HTTP client whose connections come from the
// loopback address src ("" for the default).
func clientFrom(src string) *http.Client {
	d := &net.Dialer{Timeout: wait}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 1}}
}

// handshake opens a control channel from a fresh machine key and completes
// the Noise handshake, nothing more.
func (s *served) handshake(ctx context.Context, hc *http.Client) (*noise.Conn, error) {
	ws, _, err := websocket.Dial(ctx, s.url+"/control", &websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{"warren-control-v1"}})
	if err != nil {
		return nil, err
	}
	conn, err := noise.Client(ctx, noise.WebSocket(ws), noise.ClientConfig{Machine: key.NewMachine(), Coordinator: s.c.PublicKey()})
	if err != nil {
		ws.CloseNow()
		return nil, err
	}
	return conn, nil
}

// register registers a fresh node speaking protocol version over conn and
// asks for a streamed netmap.
func (s *served) register(conn *noise.Conn, version int) error {
	if err := wire.WriteMessage(conn, &wire.RegisterRequest{Version: version, NodeKey: key.NewNode().Public(),
		DiscoKey: key.NewDisco().Public(), Hostname: "n", OS: "linux", AuthKey: s.authKey}); err != nil {
		return err
	}
	m, err := wire.ReadMessage(conn, wire.MaxCoordinatorMessage)
	if err != nil {
		return err
	}
	if r, ok := m.(*wire.RegisterResponse); !ok || !r.Authorized {
		return errors.New("registration refused: " + describe(m))
	}
	return wire.WriteMessage(conn, &wire.MapRequest{Stream: true})
}

// join handshakes and registers a node, failing t otherwise.
func (s *served) join(t testing.TB, version int) *noise.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	conn, err := s.handshake(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := s.register(conn, version); err != nil {
		t.Fatal(err)
	}
	return conn
}

func describe(m wire.Message) string {
	if e, ok := m.(*wire.Error); ok {
		return e.Error()
	}
	return m.WireType().String()
}

// closedWithin reports whether the coordinator closes conn within d (the
// test's own bound; whatever it sends meanwhile is read and dropped).
func closedWithin(conn *noise.Conn, d time.Duration) bool {
	timer := time.AfterFunc(d, func() { conn.Close() })
	for {
		if _, err := wire.ReadMessage(conn, wire.MaxCoordinatorMessage); err != nil {
			return timer.Stop() // false: the test's bound closed it
		}
	}
}

// healthy reports whether /healthz answers over hc.
func healthy(hc *http.Client, url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/healthz", nil)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// coordinatorSilence is control.SilenceKeepAlives.
const coordinatorSilence = control.SilenceKeepAlives

func newNodeKey() key.NodePublic     { return key.NewNode().Public() }
func newDiscoKey() key.DiscoPublic   { return key.NewDisco().Public() }
func storeFilter() store.AuditFilter { return store.AuditFilter{} }
