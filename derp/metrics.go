package derp

import "github.com/prometheus/client_golang/prometheus"

// Collector returns a Prometheus collector of s's counters (Stats and
// QueuedBytes), read at each scrape: metrics cost the relay's forwarding
// path nothing beyond the counters it keeps anyway. Register it on a
// registry of the caller's own (never the global default one).
func (s *Server) Collector() prometheus.Collector { return collector{s} }

type collector struct{ s *Server }

// The relay's series. The names are part of Warren's interface (the
// dashboard and alert rules in ops/ use them).
var (
	relayClientsDesc = prometheus.NewDesc("warren_relay_clients",
		"Relay clients connected now.", nil, nil)
	relayPacketsDesc = prometheus.NewDesc("warren_relay_forwarded_packets_total",
		"Packets the relay wrote to their destination.", nil, nil)
	relayBytesDesc = prometheus.NewDesc("warren_relay_forwarded_bytes_total",
		"Packet bytes (without frame headers) the relay wrote to their destination.", nil, nil)
	relayDropsDesc = prometheus.NewDesc("warren_relay_dropped_packets_total",
		"Packets the relay dropped, by reason: queue_full, unknown_dst, rate_limited, disco_oldest.", []string{"reason"}, nil)
	relayQueueDesc = prometheus.NewDesc("warren_relay_queue_bytes",
		"Bytes waiting in all clients' outbound queues now.", nil, nil)
	relayAdmissionsDesc = prometheus.NewDesc("warren_relay_admissions_total",
		"Relay connection attempts by result: admitted, denied (not admitted by the coordinator), "+
			"error (the admission check failed), handshake_failed.", []string{"result"}, nil)
	relayDisconnectsDesc = prometheus.NewDesc("warren_relay_disconnects_total",
		"Clients the relay disconnected, by reason: replaced, kicked, protocol_error.", []string{"reason"}, nil)
)

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{relayClientsDesc, relayPacketsDesc, relayBytesDesc, relayDropsDesc,
		relayQueueDesc, relayAdmissionsDesc, relayDisconnectsDesc} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(relayClientsDesc, float64(st.Clients))
	gauge(relayQueueDesc, float64(c.s.QueuedBytes()))
	counter(relayPacketsDesc, st.FramesForwarded)
	counter(relayBytesDesc, st.BytesForwarded)
	counter(relayDropsDesc, st.DroppedQueueFull, "queue_full")
	counter(relayDropsDesc, st.DroppedUnknownDst, "unknown_dst")
	counter(relayDropsDesc, st.DroppedRateLimited, "rate_limited")
	counter(relayDropsDesc, st.DroppedDiscoOldest, "disco_oldest")
	counter(relayAdmissionsDesc, st.Admitted, "admitted")
	counter(relayAdmissionsDesc, st.Refused-st.AdmitErrors, "denied")
	counter(relayAdmissionsDesc, st.AdmitErrors, "error")
	counter(relayAdmissionsDesc, st.HandshakeFailures, "handshake_failed")
	counter(relayDisconnectsDesc, st.Replaced, "replaced")
	counter(relayDisconnectsDesc, st.Kicked, "kicked")
	counter(relayDisconnectsDesc, st.ProtocolErrors, "protocol_error")
}
