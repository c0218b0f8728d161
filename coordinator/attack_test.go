package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/internal/noise"
	"github.com/warrenmesh/warren/internal/tstest/testlog"
)

// The attacks an outside test ran against the coordinator, kept so they
// stay fixed: idle connections that once exhausted its descriptors, and
// huge unauthenticated requests that once each wrote an audit row.

// idleAttackConns is how many idle handshaked connections the attack
// opens: the full 3,000 without the race detector (go test, make
// test-short), 300 with it (make test) or with -short.
func idleAttackConns() int {
	if underRace || testing.Short() {
		return 300
	}
	return 3000
}

// TestAttackIdleConnections opens many control channels from many
// loopback addresses that complete the Noise handshake and then send
// nothing. Every one is closed by the coordinator within the handshake
// bound, and /healthz and registrations keep working throughout.
func TestAttackIdleConnections(t *testing.T) {
	runIdleAttack(t, idleAttackConns())
}

func runIdleAttack(t testing.TB, n int) {
	t.Helper()
	// The handshake timeout under attack: short, so the test is; longer
	// under the race detector, where a handshake on a loaded machine is
	// slow enough to hit a short bound (which would refuse probes too).
	bound := 3 * time.Second
	if underRace {
		bound = 6 * time.Second
	}
	const sources = 30 // 127.0.0.2 … 127.0.0.31, well under the per-source cap each
	s := serve(t, coordinator.Config{HandshakeTimeout: bound})
	clients := make([]*http.Client, sources)
	for i := range clients {
		clients[i] = clientFrom(fmt.Sprintf("127.0.0.%d", i+2))
	}
	probe := clientFrom("127.0.0.1")

	var (
		opened, closedByServer, lingered atomic.Int64
		slowHandshakes                   atomic.Int64
		holders                          sync.WaitGroup
		failed                           = make(chan error, 1)
	)
	fail := func(err error) {
		select {
		case failed <- err:
		default:
		}
	}
	// Attackers: a few dialers share the work.
	next := atomic.Int64{}
	var dialers sync.WaitGroup
	for range 4 {
		dialers.Add(1)
		go func() {
			defer dialers.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				conn, err := s.handshake(ctx, clients[i%sources])
				cancel()
				if errors.Is(err, noise.ErrHandshake) {
					// The coordinator gave up on a handshake slower than
					// the bound (a loaded machine): closed within the
					// bound too, just earlier.
					opened.Add(1)
					closedByServer.Add(1)
					slowHandshakes.Add(1)
					continue
				}
				if err != nil {
					fail(fmt.Errorf("attack connection %d: %w", i, err))
					return
				}
				opened.Add(1)
				holders.Add(1)
				go func() {
					defer holders.Done()
					// The coordinator must close it within the bound; the
					// test's own limit is far longer.
					if closedWithin(conn, bound+wait) {
						closedByServer.Add(1)
					} else {
						lingered.Add(1)
					}
				}()
			}
		}()
	}
	// The coordinator keeps serving others throughout: a health check and
	// a registration while the attack runs (bounded in count), and once
	// more after.
	probes := 0
	dialed := make(chan struct{})
	go func() { dialers.Wait(); close(dialed) }()
	for attacking := true; attacking; probes++ {
		select {
		case <-dialed:
			attacking = false
		default:
			if probes >= 50 {
				<-dialed
				attacking = false
			}
		}
		if err := healthy(probe, s.url); err != nil {
			t.Fatalf("healthz during the attack (%d connections open): %v", opened.Load(), err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		conn, err := s.handshake(ctx, probe)
		cancel()
		if err != nil {
			t.Fatalf("handshake during the attack (%d connections open): %v", opened.Load(), err)
		}
		err = s.register(conn, 2)
		conn.Close()
		if err != nil {
			t.Fatalf("registration during the attack (%d connections open): %v", opened.Load(), err)
		}
	}
	holders.Wait()
	select {
	case err := <-failed:
		t.Fatal(err)
	default:
	}
	if got := closedByServer.Load(); got != int64(n) || lingered.Load() != 0 {
		t.Fatalf("%d of %d idle connections closed by the coordinator, %d still open after %v", got, n, lingered.Load(), bound+wait)
	}
	counts := s.c.Failures().Counts()
	if got := counts["control.silent"] + counts["control.handshake"]; got != uint64(n) {
		t.Fatalf("%d silent clients and slow handshakes counted, want %d", got, n)
	}
	if err := healthy(probe, s.url); err != nil {
		t.Fatalf("healthz after the attack: %v", err)
	}
	t.Logf("%d idle connections from %d addresses, all closed by the coordinator (%d of them in a handshake slower than %v); %d health checks and registrations passed meanwhile",
		n, sources, slowHandshakes.Load(), bound, probes)
}

// dbSize is the size of the coordinator's database and its WAL.
func dbSize(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	for _, name := range []string{"warren.db", "warren.db-wal"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err == nil {
			total += fi.Size()
		}
	}
	return total
}

// TestAttackHugeUnauthenticatedRequests sends 100 requests with a 900 KB
// URL path to the remote admin API and to the public endpoints, without
// credentials. The database grows by less than 1 MB and the log by a few
// lines.
func TestAttackHugeUnauthenticatedRequests(t *testing.T) {
	const requests = 100
	const limit = 1 << 20
	var logs testlog.Buffer
	dir := t.TempDir()
	s := serve(t, coordinator.Config{StateDir: dir, Relay: coordinator.RelayConfig{STUNListen: "127.0.0.1:0"},
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.c.ServeHTTP(ctx, aln, s.c.AdminHandler()) }()
	defer func() { cancel(); <-done }()
	adminURL := "http://" + aln.Addr().String()

	dbBefore, logBefore := dbSize(t, dir), logs.Len()
	huge := strings.Repeat("A", 900<<10)
	targets := []string{
		adminURL + "/api/v1/nodes/" + huge,
		adminURL + "/" + huge,
		s.url + "/" + huge,
		s.url + "/control/" + huge,
		s.url + "/derp/" + huge,
		s.url + "/login/" + huge,
	}
	hc := &http.Client{Timeout: wait}
	for i := range requests {
		u := targets[i%len(targets)]
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if i%2 == 0 {
			req.Header.Set("Authorization", "Bearer wak_abcdefghijklmnopqrstuvwxyz234567")
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("request %d to %.60s…: %s", i, u, resp.Status)
		}
	}
	grew, logged := dbSize(t, dir)-dbBefore, logs.Len()-logBefore
	t.Logf("%d requests of 900 KB: database grew %d bytes, log %d bytes", requests, grew, logged)
	if grew >= limit {
		t.Fatalf("database grew by %d bytes (want < %d)", grew, limit)
	}
	if logged >= 64<<10 {
		t.Fatalf("log grew by %d bytes (want < 64 KiB)", logged)
	}
	if n := s.c.Failures().Counts()["api.auth"]; n == 0 {
		t.Fatal("failed admin API authentications were not counted")
	}
}
