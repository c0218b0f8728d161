package coordinator

import (
	"context"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/export"
	"github.com/warrenmesh/warren/coordinator/login"
	"github.com/warrenmesh/warren/internal/metrics"
)

// coordMetrics are the coordinator's own series, on a registry of its own
// (never the Prometheus global one). Their names are part of Warren's
// interface: ops/grafana/warren.json and ops/prometheus/alerts.yml use
// them.
type coordMetrics struct {
	reg         *prometheus.Registry
	pushes      *prometheus.CounterVec
	pushLatency prometheus.Histogram
	policy      *prometheus.CounterVec
	signIns     *prometheus.CounterVec
	store       *prometheus.HistogramVec
	// The children of the vectors the hooks use, resolved once: the hooks
	// run on every store statement and netmap push.
	storeOps  map[string]prometheus.Observer
	fullPush  prometheus.Counter
	deltaPush prometheus.Counter
}

func newCoordMetrics() *coordMetrics {
	m := &coordMetrics{
		reg: metrics.NewRegistry(),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "warren_coordinator_netmap_pushes_total",
			Help: "Netmap responses handed to connected nodes, by kind: full or delta."}, []string{"kind"}),
		pushLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "warren_coordinator_netmap_push_latency_seconds",
			Help:    "Time from a change queued for a node to its netmap response taken for sending.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}),
		policy: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "warren_coordinator_policy_reloads_total",
			Help: "Policy loads and reloads, by result: applied or failed."}, []string{"result"}),
		signIns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "warren_coordinator_signins_total",
			Help: "Sign-ins, by method (local, oidc, oidc-recheck) and result (ok, denied, error)."}, []string{"method", "result"}),
		store: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "warren_coordinator_store_seconds",
			Help:    "Store latency, by op: read and write statements, and whole transactions (tx).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}, []string{"op"}),
	}
	m.reg.MustRegister(m.pushes, m.pushLatency, m.policy, m.signIns, m.store)
	// Every label value known in advance is there from the start, so
	// rate() and alerts see the series before the first event.
	m.fullPush, m.deltaPush = m.pushes.WithLabelValues("full"), m.pushes.WithLabelValues("delta")
	for _, r := range []string{"applied", "failed"} {
		m.policy.WithLabelValues(r)
	}
	m.storeOps = map[string]prometheus.Observer{}
	for _, op := range []string{"read", "write", "tx"} {
		m.storeOps[op] = m.store.WithLabelValues(op)
	}
	for _, method := range []string{login.MethodLocal, login.MethodOIDC} {
		for _, result := range []string{audit.OK, audit.Denied} {
			m.signIns.WithLabelValues(method, result)
		}
	}
	return m
}

// register adds the series read from c's parts at each scrape: the
// connected and known nodes, and the embedded relay's.
func (m *coordMetrics) register(c *Coordinator) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "warren_coordinator_connected_nodes",
			Help: "Nodes connected to the coordinator now (open netmap streams)."},
			func() float64 { return float64(c.engine.Streams()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "warren_coordinator_nodes",
			Help: "Nodes the coordinator holds (connected or not)."},
			func() float64 { return float64(c.engine.Len()) }),
	)
	if c.relay != nil {
		m.reg.MustRegister(c.relay.Collector())
	}
}

// registerSinks adds each log sink's backlog and failed deliveries,
// read from the exporter at each scrape.
func (m *coordMetrics) registerSinks(x *export.Exporter) {
	m.reg.MustRegister(sinkCollector{x: x,
		backlog: prometheus.NewDesc("warren_coordinator_sink_backlog",
			"Events a log sink has not delivered yet (-1: the store could not count them).", []string{"sink"}, nil),
		failures: prometheus.NewDesc("warren_coordinator_sink_failures_total",
			"Failed deliveries to a log sink (each is retried).", []string{"sink"}, nil),
	})
}

// sinkCollector reads the exporter's per-sink state at scrape time.
type sinkCollector struct {
	x                 *export.Exporter
	backlog, failures *prometheus.Desc
}

func (c sinkCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.backlog
	ch <- c.failures
}

func (c sinkCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range c.x.Stats(ctx) {
		ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(s.Backlog), s.Name)
		ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(s.Failures), s.Name)
	}
}

func (m *coordMetrics) onPush(full bool, waited time.Duration) {
	if full {
		m.fullPush.Inc()
	} else {
		m.deltaPush.Inc()
	}
	m.pushLatency.Observe(waited.Seconds())
}

func (m *coordMetrics) observeStore(op string, d time.Duration) {
	if o, ok := m.storeOps[op]; ok {
		o.Observe(d.Seconds())
	}
}

// onAudit counts the audited events that are metrics too: sign-ins and
// policy loads.
func (m *coordMetrics) onAudit(e audit.Event) {
	switch {
	case e.Action == "policy.apply" && e.Outcome == audit.OK:
		m.policy.WithLabelValues("applied").Inc()
	case e.Action == "policy.apply" || e.Action == "policy.reject":
		m.policy.WithLabelValues("failed").Inc()
	case strings.HasPrefix(e.Action, "login."):
		// Methods and outcomes are the coordinator's own constants, so
		// the label set stays small.
		m.signIns.WithLabelValues(strings.TrimPrefix(e.Action, "login."), e.Outcome).Inc()
	}
}

// Metrics returns the coordinator's Prometheus registry, the log sinks'
// warren_coordinator_sink_backlog{sink} and
// warren_coordinator_sink_failures_total{sink} among its series.
func (c *Coordinator) Metrics() *prometheus.Registry { return c.metrics.reg }

// MetricsHandler serves the coordinator's metrics (for embedding; the
// command serves them on their own listener with ServeMetrics).
func (c *Coordinator) MetricsHandler() http.Handler { return metrics.Handler(c.metrics.reg) }

// ServeMetrics serves the coordinator's metrics at /metrics on ln until
// ctx ends. Give it a listener of its own (loopback by default): the
// metrics are not behind the admin API's authentication.
func (c *Coordinator) ServeMetrics(ctx context.Context, ln net.Listener) error {
	return metrics.Serve(ctx, ln, c.metrics.reg)
}
