// Package nodemetrics turns a node's state into Prometheus series: its
// peers by path, each peer's handshake age and bytes, the inbound filter's
// accepts and denies by reason, and the flow spool's size. It reads a
// Snapshot at each scrape, so the data path pays nothing for metrics.
//
// It must never register on the Prometheus global registry, never label a
// series with anything unbounded but peer names, and never emit more
// per-peer series than Config.MaxPeers allows.
package nodemetrics

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/engine"
	"github.com/warrenmesh/warren/node/filter"
)

// DefaultMaxPeers bounds the peers that get series of their own.
const DefaultMaxPeers = 256

// Snapshot is the node's state at one scrape.
type Snapshot struct {
	// Running is whether the node has a data plane up.
	Running bool
	Peers   []Peer
	// Filter is the inbound filter's counters (nil: no engine).
	Filter *filter.Stats
	// Spool is the flow-log spool's state (nil: no spool; the spool
	// fills it in when it exists).
	Spool *Spool
}

// Peer is one peer's state.
type Peer struct {
	Name string
	// Path as the engine reports it: "direct …", "relay CODE" or "none".
	Path          string
	LastHandshake time.Time // zero: none yet
	RxBytes       uint64
	TxBytes       uint64
}

// Spool is the flow-log spool's state.
type Spool struct {
	Bytes   int64  // on disk now
	Dropped uint64 // records dropped (oldest first) because it was full
}

// Config configures a collector.
type Config struct {
	// Snapshot returns the node's state; it is called once per scrape.
	Snapshot func() Snapshot
	// MaxPeers caps the peers with series of their own (sorted by name);
	// 0: DefaultMaxPeers. The rest count in warren_node_peers only.
	MaxPeers int
	// Now is the clock for handshake ages (nil: time.Now).
	Now func() time.Time
}

// New returns a collector of the node's series; register it on a
// registry of the caller's own.
func New(cfg Config) prometheus.Collector {
	if cfg.MaxPeers <= 0 {
		cfg.MaxPeers = DefaultMaxPeers
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &collector{cfg: cfg}
}

// EngineSnapshot reads the snapshot of a node whose data plane is eng,
// naming peers from the netmap's peers (nil eng: not running).
func EngineSnapshot(eng *engine.Engine, peers []wire.Node) Snapshot {
	if eng == nil {
		return Snapshot{}
	}
	snap := Snapshot{Running: true}
	names := make(map[string]string, len(peers))
	for _, p := range peers {
		names[p.NodeKey.String()] = cmp.Or(p.Name, p.Hostname)
	}
	if ps, err := eng.Status(); err == nil {
		for _, p := range ps {
			name, ok := names[p.NodeKey.String()]
			if !ok {
				name = p.NodeKey.ShortString()
			}
			snap.Peers = append(snap.Peers, Peer{Name: name, Path: p.Path, LastHandshake: p.LastHandshake,
				RxBytes: p.RxBytes, TxBytes: p.TxBytes})
		}
	}
	fs := eng.FilterStats()
	snap.Filter = &fs
	return snap
}

type collector struct{ cfg Config }

// The node's series. Their names are part of Warren's interface (the
// dashboard and alert rules in ops/ use them).
var (
	upDesc = prometheus.NewDesc("warren_node_up",
		"1 when the node's data plane is up, else 0.", nil, nil)
	peersDesc = prometheus.NewDesc("warren_node_peers",
		"Peers by path: direct, relay or none.", []string{"path"}, nil)
	handshakeDesc = prometheus.NewDesc("warren_node_peer_handshake_age_seconds",
		"Seconds since the last WireGuard handshake with the peer (peers with one only).", []string{"peer"}, nil)
	peerRxDesc = prometheus.NewDesc("warren_node_peer_receive_bytes_total",
		"Bytes received from the peer (WireGuard's count).", []string{"peer"}, nil)
	peerTxDesc = prometheus.NewDesc("warren_node_peer_transmit_bytes_total",
		"Bytes sent to the peer (WireGuard's count).", []string{"peer"}, nil)
	rxDesc = prometheus.NewDesc("warren_node_receive_bytes_total",
		"Bytes received from all peers.", nil, nil)
	txDesc = prometheus.NewDesc("warren_node_transmit_bytes_total",
		"Bytes sent to all peers.", nil, nil)
	unlabeledDesc = prometheus.NewDesc("warren_node_peers_unlabeled",
		"Peers left without series of their own by the peer cap.", nil, nil)
	filterDesc = prometheus.NewDesc("warren_node_filter_packets_total",
		"Inbound packets the filter decided, by verdict (accept, deny) and reason.", []string{"verdict", "reason"}, nil)
	flowsDesc = prometheus.NewDesc("warren_node_filter_tracked_flows",
		"Flows this node started that the filter tracks now.", nil, nil)
	spoolDesc = prometheus.NewDesc("warren_node_spool_bytes",
		"Bytes in the flow-log spool on disk.", nil, nil)
	spoolDropDesc = prometheus.NewDesc("warren_node_spool_dropped_records_total",
		"Flow records the full spool dropped (oldest first).", nil, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{upDesc, peersDesc, handshakeDesc, peerRxDesc, peerTxDesc, rxDesc, txDesc,
		unlabeledDesc, filterDesc, flowsDesc, spoolDesc, spoolDropDesc} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	snap := c.cfg.Snapshot()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	up := 0.0
	if snap.Running {
		up = 1
	}
	gauge(upDesc, up)

	byPath := map[string]int{"direct": 0, "relay": 0, "none": 0}
	var rx, tx uint64
	peers := slices.Clone(snap.Peers)
	slices.SortFunc(peers, func(a, b Peer) int { return strings.Compare(a.Name, b.Name) })
	now := c.cfg.Now()
	seen := map[string]bool{}
	unlabeled := 0
	for _, p := range peers {
		byPath[pathKind(p.Path)]++
		rx += p.RxBytes
		tx += p.TxBytes
		if len(seen) >= c.cfg.MaxPeers || seen[p.Name] {
			unlabeled++ // over the cap, or a duplicate name
			continue
		}
		seen[p.Name] = true
		if !p.LastHandshake.IsZero() {
			gauge(handshakeDesc, max(0, now.Sub(p.LastHandshake).Seconds()), p.Name)
		}
		counter(peerRxDesc, p.RxBytes, p.Name)
		counter(peerTxDesc, p.TxBytes, p.Name)
	}
	for path, n := range byPath {
		gauge(peersDesc, float64(n), path)
	}
	gauge(unlabeledDesc, float64(unlabeled))
	counter(rxDesc, rx)
	counter(txDesc, tx)

	if snap.Filter != nil {
		for r, n := range snap.Filter.Accepted {
			counter(filterDesc, n, "accept", string(r))
		}
		for r, n := range snap.Filter.Dropped {
			counter(filterDesc, n, "deny", string(r))
		}
		gauge(flowsDesc, float64(snap.Filter.Flows))
	}
	if snap.Spool != nil {
		gauge(spoolDesc, float64(snap.Spool.Bytes))
		counter(spoolDropDesc, snap.Spool.Dropped)
	}
}

// pathKind is the first word of a path: direct, relay or none.
func pathKind(path string) string {
	switch {
	case strings.HasPrefix(path, "direct"):
		return "direct"
	case strings.HasPrefix(path, "relay"):
		return "relay"
	}
	return "none"
}
