package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/cli"
)

// bound is a failure bound for the runs here, never a measurement.
const bound = 2 * time.Minute

var admin = registry.Actor{Name: "test:admin", Admin: true}

// coord is a real coordinator serving on loopback, as warren-coordinator
// serve does, with a reusable pre-auth key.
type coord struct {
	c       *coordinator.Coordinator
	url     string
	authKey string
}

func startCoordinator(t *testing.T) *coord {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := coordinator.Config{StateDir: t.TempDir()}
	cfg.Relay.Disable = true
	ctx := context.Background()
	c, err := coordinator.New(ctx, cfg)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.ServeHTTP(sctx, ln, c.Handler()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("ServeHTTP: %v", err)
		}
		c.Close()
	})
	u, err := c.Registry().CreateUser(ctx, admin, store.User{Name: "load@example.com", Email: "load@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	_, plain, err := c.Registry().CreateAuthKey(ctx, admin, registry.AuthKeyRequest{UserID: u.ID, Reusable: true, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return &coord{c: c, url: "http://" + ln.Addr().String(), authKey: plain}
}

// TestRun runs the tool's core against a real coordinator and checks the
// report's counts: every node mapped, with every other as a peer (the
// default policy lets one user's nodes reach each other), and every node
// saw the change.
func TestRun(t *testing.T) {
	for _, tc := range []struct {
		name    string
		nodes   int
		sources int
	}{
		{"one source", loadNodes, 1},
		{"three sources", 10, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			co := startCoordinator(t)
			ctx, cancel := context.WithTimeout(t.Context(), bound)
			defer cancel()
			var ticks int
			rep, err := run(ctx, Config{URL: co.url, AuthKey: co.authKey, Nodes: tc.nodes, Concurrency: 16, Sources: tc.sources,
				Stats: procStats{pid: os.Getpid()}, Progress: func(mapped, failed, total int) { ticks++ }, Tick: 50 * time.Millisecond, Settle: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK || rep.Mapped != tc.nodes || rep.Failed != 0 || rep.FirstError != "" {
				t.Fatalf("report: ok %v mapped %d failed %d: %s", rep.OK, rep.Mapped, rep.Failed, rep.FirstError)
			}
			if rep.Change.Seen != tc.nodes || rep.Change.Latency.N != tc.nodes || rep.MappedAt.N != tc.nodes {
				t.Errorf("change seen by %d (latencies %d, map times %d), want %d", rep.Change.Seen, rep.Change.Latency.N, rep.MappedAt.N, tc.nodes)
			}
			// At the end each node has the others and the extra node.
			if rep.PeersPerNode.N != tc.nodes || rep.PeersPerNode.Max != float64(tc.nodes) || rep.PeersPerNode.P50 != float64(tc.nodes) {
				t.Errorf("peers per node %+v, want %d each", rep.PeersPerNode, tc.nodes)
			}
			if rep.Change.ProbeMappedMs <= 0 || rep.FirstMapBytes.P50 <= 0 || rep.BytesPerNode.Mean < rep.FirstMapBytes.Mean {
				t.Errorf("bytes: first map %+v, in the run %+v", rep.FirstMapBytes, rep.BytesPerNode)
			}
			if !rep.Coordinator.Measured || rep.Coordinator.RSSEnd <= 0 || rep.Coordinator.CPUTotal <= 0 {
				t.Errorf("coordinator not measured: %+v", rep.Coordinator)
			}
			if ticks == 0 {
				t.Error("no progress reported")
			}
			var human bytes.Buffer
			printHuman(&human, rep)
			if !strings.Contains(human.String(), "OK:") {
				t.Errorf("human report:\n%s", human.String())
			}
		})
	}
}

// TestMainExitStatus checks the command's exit status and its JSON report:
// 0 for a complete run, 1 when nodes fail (a wrong pre-auth key), 2 for bad
// usage.
func TestMainExitStatus(t *testing.T) {
	co := startCoordinator(t)
	ctx, cancel := context.WithTimeout(t.Context(), bound)
	defer cancel()
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"complete", []string{"--url", co.url, "--auth-key", co.authKey, "--nodes", "3", "--settle", "100ms", "--json"}, 0},
		{"refused", []string{"--url", co.url, "--auth-key", "wrong", "--nodes", "2", "--json"}, 1},
		{"no url", []string{"--auth-key", "k"}, 2},
		{"bad nodes", []string{"--url", co.url, "--auth-key", "k", "--nodes", "0"}, 2},
		{"both stats", []string{"--url", co.url, "--auth-key", "k", "--coordinator-pid", "1", "--metrics", "http://x"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := runMain(ctx, tc.args, &stdout, &stderr, false)
			code := 0
			if err != nil {
				code = 1
				var ee *cli.ExitError
				if errors.As(err, &ee) {
					code = ee.Code
				}
			}
			if code != tc.code {
				t.Fatalf("exit status %d (err %v), want %d; stderr:\n%s", code, err, tc.code, stderr.String())
			}
			if code == 2 {
				return
			}
			var rep Report
			if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
				t.Fatalf("JSON report: %v\n%s", err, stdout.String())
			}
			if rep.OK != (code == 0) || (code == 1 && (rep.Failed == 0 || rep.FirstError == "")) {
				t.Errorf("report: ok %v failed %d error %q", rep.OK, rep.Failed, rep.FirstError)
			}
			if strings.Contains(stdout.String()+stderr.String(), co.authKey) {
				t.Error("the pre-auth key was printed")
			}
		})
	}
}

func TestSummary(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want Summary
	}{
		{nil, Summary{}},
		{[]float64{5}, Summary{N: 1, P50: 5, P99: 5, Max: 5, Mean: 5}},
		{[]float64{4, 1, 3, 2}, Summary{N: 4, P50: 2, P99: 4, Max: 4, Mean: 2.5}},
	} {
		if got := summary(tc.in); got != tc.want {
			t.Errorf("summary(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
	v := make([]float64, 1000)
	for i := range v {
		v[i] = float64(1000 - i)
	}
	if s := summary(v); s.P50 != 500 || s.P99 != 990 || s.Max != 1000 {
		t.Errorf("1..1000: %+v", s)
	}
}

// TestNodeAuthKey: with NodeAuthKeys the nodes take them in turn; without,
// every node registers with AuthKey.
func TestNodeAuthKey(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want []string
	}{
		{Config{AuthKey: "p"}, []string{"p", "p", "p"}},
		{Config{AuthKey: "p", NodeAuthKeys: []string{"a", "b"}}, []string{"a", "b", "a"}},
	} {
		for i, want := range tc.want {
			if got := tc.cfg.nodeAuthKey(i); got != want {
				t.Errorf("%+v: node %d registers with %q, want %q", tc.cfg.NodeAuthKeys, i, got, want)
			}
		}
	}
}
