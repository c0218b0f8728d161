package derp

import (
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/metrics"
	"github.com/warrenmesh/warren/internal/tstest/promscrape"
)

// TestMetrics scrapes a real relay's /metrics over HTTP and checks that
// the key series are there and move with traffic, drops and admissions.
func TestMetrics(t *testing.T) {
	ka, kb := key.NewNode(), key.NewNode()
	admit := newAdmitSet(ka, kb)
	relay := newRelay(t, ServerConfig{Admit: admit.admit})
	reg := metrics.NewRegistry()
	reg.MustRegister(relay.Collector())
	ms := httptest.NewServer(metrics.Handler(reg))
	t.Cleanup(ms.Close)

	before := promscrape.Scrape(t, ms.URL+metrics.Path)
	for _, name := range []string{"warren_relay_clients", "warren_relay_forwarded_packets_total",
		"warren_relay_forwarded_bytes_total", "warren_relay_dropped_packets_total", "warren_relay_queue_bytes",
		"warren_relay_admissions_total", "warren_relay_disconnects_total", "go_goroutines"} {
		if !before.Has(name) {
			t.Fatalf("series %s missing; have %s", name, before.Names())
		}
	}
	if v, _ := before.Value("warren_relay_clients"); v != 0 {
		t.Fatalf("clients before any dial = %v", v)
	}

	a, b := relay.dial(t, ka), relay.dial(t, kb)
	ctx := testCtx(t)
	if err := a.Send(ctx, kb.Public(), make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	recvPacket(t, b)
	if err := a.Send(ctx, key.NewNode().Public(), []byte("nobody")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Ping(ctx); err != nil { // the relay has read the packet for nobody
		t.Fatal(err)
	}
	if _, err := Dial(ctx, relay.url, key.NewNode(), ClientOptions{}); err == nil {
		t.Fatal("an unknown key was admitted")
	}
	admit.fail(errors.New("coordinator unreachable"))
	if _, err := Dial(ctx, relay.url, ka, ClientOptions{}); err == nil {
		t.Fatal("admitted while the check fails")
	}

	after := promscrape.Scrape(t, ms.URL+metrics.Path)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"warren_relay_clients", nil, 2},
		{"warren_relay_forwarded_packets_total", nil, 1},
		{"warren_relay_forwarded_bytes_total", nil, 1000},
		{"warren_relay_dropped_packets_total", []string{"reason", "unknown_dst"}, 1},
		{"warren_relay_admissions_total", []string{"result", "admitted"}, 2},
		{"warren_relay_admissions_total", []string{"result", "denied"}, 1},
		{"warren_relay_admissions_total", []string{"result", "error"}, 1},
	} {
		if got, ok := after.Value(c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
}
