package daemon_test

import (
	"net/http/httptest"
	"testing"

	"github.com/warrenmesh/warren/internal/metrics"
	"github.com/warrenmesh/warren/internal/tstest/promscrape"
	"github.com/warrenmesh/warren/node/daemon"
	"github.com/warrenmesh/warren/node/nodemetrics"
)

// TestMetricsSnapshot serves a real daemon's metrics as warrend
// --metrics-listen does and checks they follow it: down before up, then
// one peer, and bytes after traffic through the proxy.
func TestMetricsSnapshot(t *testing.T) {
	m, k := meshWithKey(t)
	svc := helloServer(t, "server")
	laptop := startNode(t, t.TempDir(), daemon.Config{})
	server := startNode(t, t.TempDir(), daemon.Config{Expose: []daemon.Expose{{Port: 80, Target: svc}}})
	reg := metrics.NewRegistry()
	reg.MustRegister(nodemetrics.New(nodemetrics.Config{Snapshot: laptop.d.MetricsSnapshot}))
	ms := httptest.NewServer(metrics.Handler(reg))
	defer ms.Close()
	url := ms.URL + metrics.Path

	if v, ok := promscrape.Scrape(t, url).Value("warren_node_up"); !ok || v != 0 {
		t.Fatalf("warren_node_up before up = %v (present %v), want 0", v, ok)
	}
	up(t, laptop, m, "laptop", k)
	up(t, server, m, "server", k)
	waitPeers(t, laptop, 1)
	if body, err := getVia("http://"+laptop.proxy, "http://server/"); err != nil || body != "hello from server" {
		t.Fatalf("GET through the mesh: %q, %v", body, err)
	}
	f := promscrape.Scrape(t, url)
	for _, c := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"warren_node_up", nil, 1},
		{"warren_node_peers", nil, 1},
		{"warren_node_transmit_bytes_total", nil, 1},
		{"warren_node_peer_transmit_bytes_total", []string{"peer", "server"}, 1},
		{"warren_node_peer_handshake_age_seconds", []string{"peer", "server"}, 0},
		{"warren_node_filter_packets_total", []string{"verdict", "accept"}, 1},
	} {
		if v, ok := f.Value(c.name, c.labels...); !ok || v < c.min {
			t.Errorf("%s%v = %v (present %v), want at least %v", c.name, c.labels, v, ok, c.min)
		}
	}
	if v, _ := f.Value("warren_node_peers"); v != 1 {
		t.Errorf("peers by path sum to %v, want 1", v)
	}
}
