package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/noise"
	"github.com/warrenmesh/warren/internal/tstest/testmesh"
	"github.com/warrenmesh/warren/internal/wire"
)

// registerOnce registers a new node with a pre-auth key over the real
// control channel (websocket, Noise, RegisterRequest) and hangs up; unlike
// controlclient it never retries, so every failure is seen.
func registerOnce(ctx context.Context, hc *http.Client, url string, coord key.ControlPublic, authKey, hostname string) error {
	ws, _, err := websocket.Dial(ctx, url+"/control", &websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{"warren-control-v1"}})
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	conn, err := noise.Client(ctx, noise.WebSocket(ws), noise.ClientConfig{Machine: key.NewMachine(), Coordinator: coord})
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	err = wire.WriteMessage(conn, &wire.RegisterRequest{Version: wire.ProtocolVersion, NodeKey: key.NewNode().Public(),
		DiscoKey: key.NewDisco().Public(), Hostname: hostname, OS: "linux", AuthKey: authKey})
	if err != nil {
		return fmt.Errorf("send registration: %w", err)
	}
	m, err := wire.ReadMessage(conn, wire.MaxCoordinatorMessage)
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if r, ok := m.(*wire.RegisterResponse); !ok || !r.Authorized {
		return refusal{fmt.Errorf("answer %T %+v", m, m)}
	}
	return nil
}

// refusal is the coordinator's answer refusing a registration, as opposed
// to a connection that failed on the way.
type refusal struct{ error }

// registerRetrying is registerOnce retried, like a real node's control
// client, up to three times when the connection fails (on a machine so
// overloaded that a client's first message misses the coordinator's
// bound, the coordinator hangs up on it); a refusal is never retried. It
// returns how many attempts failed, and the last error.
func registerRetrying(ctx context.Context, hc *http.Client, url string, coord key.ControlPublic, authKey, hostname string) (int, error) {
	var err error
	for attempt := range 3 {
		err = registerOnce(ctx, hc, url, coord, authKey, hostname)
		if err == nil {
			return attempt, nil
		}
		if errors.As(err, new(refusal)) || ctx.Err() != nil {
			return attempt + 1, err
		}
	}
	return 3, err
}

// registerWave runs n registrations at once (all released together) and
// returns the failures and the number of connections retried.
func registerWave(ctx context.Context, m *testmesh.Mesh, authKey string, wave, n int) (failed []error, retried int) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: -1}}
	defer hc.CloseIdleConnections()
	start := make(chan struct{})
	errs := make(chan error, n)
	var retries atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			failedAttempts, err := registerRetrying(ctx, hc, m.URL, m.Coord.PublicKey(), authKey, fmt.Sprintf("load-%d-%d", wave, i))
			retries.Add(int64(failedAttempts))
			errs <- err
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	return failed, int(retries.Load())
}

// TestAttackConcurrentRegistrations is the attack that found registrations
// failing under load with "database is locked (SQLITE_BUSY)": simultaneous
// registrations with one reusable pre-auth key through the real
// coordinator. Every one must succeed, slower if need be, and leave its
// node and its node.register audit row. (1,500 at once; fewer under the
// race detector, which slows each one tenfold: see race_test.go.) The
// handshake timeout, 10 s in production, is raised here: thousands of
// handshakes at once on two busy cores can take longer, and that would fail
// the test for the machine's load, not for the store.
func TestAttackConcurrentRegistrations(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	m := testmesh.New(t, testmesh.Options{Coordinator: coordinator.Config{HandshakeTimeout: 4 * time.Minute}})
	u := m.User("load@example.com")
	authKey := m.AuthKey(registry.AuthKeyRequest{UserID: u.ID, Reusable: true})
	failed, retried := registerWave(ctx, m, authKey, 0, concurrentRegistrations)
	if len(failed) > 0 {
		t.Fatalf("%d of %d registrations failed; the first: %v", len(failed), concurrentRegistrations, failed[0])
	}
	if retried > 0 {
		t.Logf("%d connections failed on the way and were retried, as a node would", retried)
	}
	st := m.Coord.Store()
	nodes, err := st.ListNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	events, err := st.ListAudit(ctx, store.AuditFilter{Action: "node.register", Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	ok := 0
	for _, e := range events {
		if e.Outcome == "ok" {
			ok++
		}
	}
	if len(nodes) != concurrentRegistrations || ok != concurrentRegistrations {
		t.Fatalf("%d nodes and %d node.register audit rows, want %d of each", len(nodes), ok, concurrentRegistrations)
	}
}
