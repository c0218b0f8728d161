package coordinator_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var e struct {
				Event struct{ ID, Action, Dataset string }
			}
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("line %q: %v", sc.Text(), err)
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
