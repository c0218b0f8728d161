package coordinator_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/export"
	"github.com/warrenmesh/warren/internal/tstest/poll"
)

// TestLogSinkGetsAuditTrail: a coordinator with a file log sink writes
// the audit events of real admin actions (the harness creates a user and
// a pre-auth key) to it in the export schema.
func TestLogSinkGetsAuditTrail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	sink, err := export.ParseURL("file://" + path)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, coordinator.Config{LogSinks: []export.SinkConfig{sink}})
	want := map[string]bool{"user.create": false, "authkey.create": false}
	poll.Until(t, 30*time.Second, "the admin actions' events in "+path, func() error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		// Whole lines only: the last may still be being written.
		for _, line := range strings.SplitAfter(string(b), "\n") {
			if !strings.HasSuffix(line, "\n") {
				break
			}
			var e struct {
				Event struct{ ID, Action, Dataset string }
			}
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			if _, ok := want[e.Event.Action]; ok && e.Event.Dataset == export.DatasetAudit && e.Event.ID != "" {
				want[e.Event.Action] = true
			}
		}
		for a, seen := range want {
			if !seen {
				return fmt.Errorf("no %s event yet", a)
			}
		}
		return nil
	})
}

// TestLogSinkMetrics: a sink whose receiver fails counts its failed
// deliveries and shows a backlog; once the receiver answers, the backlog
// drains to zero.
func TestLogSinkMetrics(t *testing.T) {
	var up atomic.Bool
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer rcv.Close()
	sink, err := export.ParseURL(rcv.URL + "/hook?name=siem")
	if err != nil {
		t.Fatal(err)
	}
	s := serve(t, coordinator.Config{LogSinks: []export.SinkConfig{sink}})
	sinkSeries := func() (backlog, failures float64) {
		mfs, err := s.c.Metrics().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				switch mf.GetName() {
				case "warren_coordinator_sink_backlog":
					backlog = m.GetGauge().GetValue()
				case "warren_coordinator_sink_failures_total":
					failures = m.GetCounter().GetValue()
				}
			}
		}
		return backlog, failures
	}
	poll.Until(t, 30*time.Second, "failed deliveries and a backlog", func() error {
		if b, f := sinkSeries(); b <= 0 || f <= 0 {
			return fmt.Errorf("backlog %v, failures %v", b, f)
		}
		return nil
	})
	up.Store(true)
	poll.Until(t, 30*time.Second, "the backlog to drain", func() error {
		if b, _ := sinkSeries(); b != 0 {
			return fmt.Errorf("backlog %v", b)
		}
		return nil
	})
}
