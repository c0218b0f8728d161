// Package ops_test checks the operations files against the programs: the
// Grafana dashboard parses and the Prometheus alert rules load, and every
// series either names exists in the coordinator's, relay's or node's
// registry (or is one a later part registers, listed in future).
package ops_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/derp"
	"github.com/warrenmesh/warren/node/filter"
	"github.com/warrenmesh/warren/node/nodemetrics"
)

// future are series the files name that a later part of Warren
// registers on the coordinator's registry (Coordinator.Metrics): the SIEM
// sinks' backlog and failures.
var future = map[string]bool{
	"warren_coordinator_sink_backlog":        true,
	"warren_coordinator_sink_failures_total": true,
}

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	Title  string `json:"title"`
	UID    string `json:"uid"`
	Panels []struct {
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func readDashboard(t *testing.T) (dashboard, []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("grafana", "warren.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana/warren.json: %v", err)
	}
	var exprs []string
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	return d, exprs
}

var seriesName = regexp.MustCompile(`\bwarren_[a-z0-9_]+`)

// names returns the warren_ series named in texts, histogram suffixes
// stripped.
func names(texts ...string) map[string]bool {
	out := map[string]bool{}
	for _, text := range texts {
		for _, n := range seriesName.FindAllString(text, -1) {
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				if s, ok := strings.CutSuffix(n, suffix); ok && strings.HasSuffix(s, "_seconds") {
					n = s
				}
			}
			out[n] = true
		}
	}
	return out
}

// registered gathers the names of every series of the three programs'
// registries, built from the real components.
func registered(t *testing.T) map[string]bool {
	t.Helper()
	c, err := coordinator.New(context.Background(), coordinator.Config{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	relay, err := derp.NewServer(derp.ServerConfig{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	relayReg := prometheus.NewRegistry()
	relayReg.MustRegister(relay.Collector())
	nodeReg := prometheus.NewRegistry()
	nodeReg.MustRegister(nodemetrics.New(nodemetrics.Config{Snapshot: func() nodemetrics.Snapshot {
		return nodemetrics.Snapshot{Running: true,
			Peers: []nodemetrics.Peer{{Name: "server", Path: "relay warren", LastHandshake: time.Now(), RxBytes: 1, TxBytes: 1}},
			Filter: &filter.Stats{Accepted: map[filter.Reason]uint64{filter.ReasonRule: 1},
				Dropped: map[filter.Reason]uint64{filter.ReasonNoRule: 1}},
			Spool: &nodemetrics.Spool{}}
	}}))
	out := map[string]bool{}
	for _, g := range []prometheus.Gatherer{c.Metrics(), relayReg, nodeReg} {
		mfs, err := g.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			out[mf.GetName()] = true
		}
	}
	return out
}

// TestSeriesExist: every warren_ series the dashboard and the alert rules
// name is one the programs export.
func TestSeriesExist(t *testing.T) {
	d, exprs := readDashboard(t)
	if d.Title == "" || d.UID == "" || len(exprs) == 0 {
		t.Fatalf("dashboard without title, uid or queries: %+v", d)
	}
	alerts, err := os.ReadFile(filepath.Join("prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	have := registered(t)
	for file, used := range map[string]map[string]bool{
		"grafana/warren.json":   names(exprs...),
		"prometheus/alerts.yml": names(string(alerts)),
	} {
		if len(used) == 0 {
			t.Errorf("%s names no warren_ series", file)
		}
		for n := range used {
			if !have[n] && !future[n] {
				t.Errorf("%s uses %s, which no program exports", file, n)
			}
		}
	}
}

// promtool returns Debian's promtool ($WARREN_TEST_PROMTOOL, as .ci/run
// unpacks it, or on PATH), or skips the test.
func promtool(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("WARREN_TEST_PROMTOOL"); p != "" {
		return p
	}
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found (set WARREN_TEST_PROMTOOL or install Debian's prometheus package); .ci/run provides it")
	}
	return p
}

// TestAlertRules loads the alert rules with promtool and runs their unit
// tests (prometheus/alerts_test.yml).
func TestAlertRules(t *testing.T) {
	bin := promtool(t)
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = "prometheus"
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
