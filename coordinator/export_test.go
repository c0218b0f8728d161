package coordinator_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
