package nodemetrics

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/warrenmesh/warren/node/filter"
)

func gather(t *testing.T, c prometheus.Collector) map[string][]*dto.Metric {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]*dto.Metric{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf.GetMetric()
	}
	return out
}

func value(ms []*dto.Metric, labels ...string) (float64, bool) {
	for _, m := range ms {
		ok := true
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
			}
			ok = ok && found
		}
		if !ok {
			continue
		}
		if m.GetGauge() != nil {
			return m.GetGauge().GetValue(), true
		}
		return m.GetCounter().GetValue(), true
	}
	return 0, false
}

// TestCollector: peers count by path, the per-peer series stop at the
// cap, ages come from the clock, and the filter and spool series appear
// only when there is a filter and a spool.
func TestCollector(t *testing.T) {
	now := time.Unix(1000, 0)
	paths := []string{"direct 192.0.2.1:41641", "relay warren", "none", "direct (unproven; no relay)", "relay fra"}
	var peers []Peer
	for i, p := range paths {
		peers = append(peers, Peer{Name: fmt.Sprintf("p%d", i), Path: p, LastHandshake: now.Add(-time.Duration(i+1) * time.Minute),
			RxBytes: 100, TxBytes: 10})
	}
	for _, tc := range []struct {
		name      string
		snap      Snapshot
		maxPeers  int
		labeled   int
		unlabeled float64
		filter    bool
	}{
		{"stopped", Snapshot{}, 0, 0, 0, false},
		{"under the cap", Snapshot{Running: true, Peers: peers, Filter: &filter.Stats{
			Accepted: map[filter.Reason]uint64{filter.ReasonRule: 7}, Dropped: map[filter.Reason]uint64{filter.ReasonNoRule: 3}},
			Spool: &Spool{Bytes: 42, Dropped: 1}}, 0, 5, 0, true},
		{"over the cap", Snapshot{Running: true, Peers: peers}, 2, 2, 3, false},
		{"duplicate names", Snapshot{Running: true, Peers: append([]Peer{peers[0]}, peers[0])}, 0, 1, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := gather(t, New(Config{Snapshot: func() Snapshot { return tc.snap }, MaxPeers: tc.maxPeers,
				Now: func() time.Time { return now }}))
			if n := len(got["warren_node_peer_handshake_age_seconds"]); n != tc.labeled {
				t.Errorf("%d handshake series, want %d", n, tc.labeled)
			}
			if v, _ := value(got["warren_node_peers_unlabeled"]); v != tc.unlabeled {
				t.Errorf("unlabeled = %v, want %v", v, tc.unlabeled)
			}
			total := 0.0
			for _, path := range []string{"direct", "relay", "none"} {
				v, ok := value(got["warren_node_peers"], "path", path)
				if !ok {
					t.Errorf("no warren_node_peers{path=%q}", path)
				}
				total += v
			}
			if int(total) != len(tc.snap.Peers) {
				t.Errorf("peers by path sum to %v, want %d", total, len(tc.snap.Peers))
			}
			if _, ok := got["warren_node_filter_packets_total"]; ok != tc.filter {
				t.Errorf("filter series present = %v, want %v", ok, tc.filter)
			}
			if !tc.filter {
				return
			}
			if v, _ := value(got["warren_node_filter_packets_total"], "verdict", "deny", "reason", "no-rule"); v != 3 {
				t.Errorf("denies = %v", v)
			}
			if v, _ := value(got["warren_node_peers"], "path", "direct"); v != 2 {
				t.Errorf("direct peers = %v, want 2", v)
			}
			if v, _ := value(got["warren_node_peer_handshake_age_seconds"], "peer", "p2"); v != 180 {
				t.Errorf("p2's handshake age = %v, want 180", v)
			}
			if v, _ := value(got["warren_node_spool_bytes"]); v != 42 {
				t.Errorf("spool bytes = %v", v)
			}
		})
	}
}
