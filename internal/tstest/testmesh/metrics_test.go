package testmesh

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/metrics"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/tstest/promscrape"
	"github.com/warrenmesh/warren/node/nodemetrics"
)

// metricsPolicy lets a user reach port 80 of their own nodes only, so
// that a packet to any other port is one the destination's filter denies.
const metricsPolicy = `{"acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:80"]}]}`

// serveCoordMetrics serves the coordinator's /metrics on a loopback
// listener of its own, as warren-coordinator serve --metrics-listen does.
func serveCoordMetrics(t *testing.T, m *Mesh) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Coord.ServeMetrics(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeMetrics: %v", err)
		}
	})
	return "http://" + ln.Addr().String() + metrics.Path
}

// serveNodeMetrics serves n's node series as warrend --metrics-listen does.
func serveNodeMetrics(t *testing.T, n *Node) string {
	t.Helper()
	reg := metrics.NewRegistry()
	reg.MustRegister(nodemetrics.New(nodemetrics.Config{Snapshot: func() nodemetrics.Snapshot {
		nm := n.Netmap()
		if nm == nil {
			return nodemetrics.Snapshot{}
		}
		return nodemetrics.EngineSnapshot(n.Engine(), nm.Peers)
	}}))
	srv := httptest.NewServer(metrics.Handler(reg))
	t.Cleanup(srv.Close)
	return srv.URL + metrics.Path
}

// valueOf returns one series' value, failing the test if it is absent.
func valueOf(t *testing.T, f promscrape.Families, name string, labels ...string) float64 {
	t.Helper()
	v, ok := f.Value(name, labels...)
	if !ok {
		t.Fatalf("series %s%v missing; have %s", name, labels, f.Names())
	}
	return v
}

// TestMetrics scrapes the coordinator's and a node's /metrics over HTTP
// while two nodes join and talk, and checks the key series move:
// connected nodes 0 -> 2, netmap pushes and their latency, store timings,
// policy loads, and at the destination node the filter's accepts and
// denies, the bytes and the peers by path.
func TestMetrics(t *testing.T) {
	m := New(t, Options{Policy: metricsPolicy})
	coordURL := serveCoordMetrics(t, m)

	before := promscrape.Scrape(t, coordURL)
	for _, name := range []string{"warren_coordinator_connected_nodes", "warren_coordinator_netmap_pushes_total",
		"warren_coordinator_netmap_push_latency_seconds", "warren_coordinator_policy_reloads_total",
		"warren_coordinator_signins_total", "warren_coordinator_store_seconds", "warren_relay_clients",
		"warren_relay_admissions_total", "process_start_time_seconds"} {
		if !before.Has(name) {
			t.Fatalf("coordinator series %s missing; have %s", name, before.Names())
		}
	}
	if v := valueOf(t, before, "warren_coordinator_connected_nodes"); v != 0 {
		t.Fatalf("connected nodes before any node = %v", v)
	}
	if v := valueOf(t, before, "warren_coordinator_policy_reloads_total", "result", "applied"); v < 1 {
		t.Fatalf("policy loads = %v, want the first load counted", v)
	}
	pushes0 := valueOf(t, before, "warren_coordinator_netmap_pushes_total")

	nodes := meshOf(t, m, "laptop", "server")
	laptop, server := nodes[0], nodes[1]
	poll.Until(t, wait, "two connected nodes in the coordinator's metrics", func() error {
		f, err := promscrape.Fetch(coordURL)
		if err != nil {
			return err
		}
		if v, _ := f.Value("warren_coordinator_connected_nodes"); v != 2 {
			return fmt.Errorf("connected nodes = %v", v)
		}
		return nil
	})
	after := promscrape.Scrape(t, coordURL)
	if v := valueOf(t, after, "warren_coordinator_netmap_pushes_total", "kind", "full"); v < 2 {
		t.Errorf("full netmaps pushed = %v, want one per node at least", v)
	}
	if v := valueOf(t, after, "warren_coordinator_netmap_pushes_total"); v <= pushes0 {
		t.Errorf("netmap pushes did not move: %v -> %v", pushes0, v)
	}
	if v := valueOf(t, after, "warren_coordinator_netmap_push_latency_seconds"); v < 2 {
		t.Errorf("push latency observations = %v", v)
	}
	if valueOf(t, after, "warren_coordinator_store_seconds", "op", "tx") <= valueOf(t, before, "warren_coordinator_store_seconds", "op", "tx") {
		t.Error("store transactions were not timed")
	}

	// A broken policy edit is rejected and counted.
	failed0 := valueOf(t, after, "warren_coordinator_policy_reloads_total", "result", "failed")
	m.WritePolicy(`{"acls": [`)
	poll.Until(t, wait, "a rejected policy edit in the coordinator's metrics", func() error {
		f, err := promscrape.Fetch(coordURL)
		if err != nil {
			return err
		}
		if v, _ := f.Value("warren_coordinator_policy_reloads_total", "result", "failed"); v <= failed0 {
			return fmt.Errorf("failed policy loads = %v", v)
		}
		return nil
	})

	nodeURL := serveNodeMetrics(t, server)
	n0 := promscrape.Scrape(t, nodeURL)
	if v := valueOf(t, n0, "warren_node_up"); v != 1 {
		t.Fatalf("warren_node_up = %v", v)
	}
	if v := valueOf(t, n0, "warren_node_peers"); v != 1 {
		t.Fatalf("peers by path sum to %v, want 1", v)
	}
	accepts0, _ := n0.Value("warren_node_filter_packets_total", "verdict", "accept", "reason", "rule")
	denies0, _ := n0.Value("warren_node_filter_packets_total", "verdict", "deny", "reason", "no-rule")
	rx0 := valueOf(t, n0, "warren_node_receive_bytes_total")

	// An allowed request: accepts and bytes move at the destination.
	serveHTTP(t, server)
	dst := addr4(t, server)
	// (Retried: on a loaded machine the first handshake may be lost.)
	poll.Until(t, 3*wait, "a GET through the mesh", func() error {
		if body, err := get(t, laptop, dst); err != nil || body != "hello from server" {
			return fmt.Errorf("%q, %v", body, err)
		}
		return nil
	})
	n1 := promscrape.Scrape(t, nodeURL)
	if v := valueOf(t, n1, "warren_node_filter_packets_total", "verdict", "accept", "reason", "rule"); v <= accepts0 {
		t.Errorf("filter accepts did not move: %v -> %v", accepts0, v)
	}
	if v := valueOf(t, n1, "warren_node_receive_bytes_total"); v <= rx0 {
		t.Errorf("received bytes did not move: %v -> %v", rx0, v)
	}
	if !n1.Has("warren_node_peer_handshake_age_seconds") {
		t.Error("no handshake age after a handshake")
	}

	// A denied one: the destination's filter drops the SYN and counts it.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	dialDenied := func() {
		dctx, dcancel := context.WithTimeout(ctx, 200*time.Millisecond) // the SYN goes out; no answer comes
		defer dcancel()
		c, err := laptop.Engine().DialContext(dctx, "tcp", netip.AddrPortFrom(dst, 81))
		if err == nil {
			c.Close()
			t.Fatal("port 81 reached through a policy that allows port 80 only")
		}
	}
	poll.Until(t, wait, "a filter deny in the destination's metrics", func() error {
		dialDenied()
		f, err := promscrape.Fetch(nodeURL)
		if err != nil {
			return err
		}
		if v, _ := f.Value("warren_node_filter_packets_total", "verdict", "deny", "reason", "no-rule"); v <= denies0 {
			return fmt.Errorf("denies = %v (before %v)", v, denies0)
		}
		return nil
	})
}
