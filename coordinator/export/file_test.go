package export

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/poll"
)

// readLines returns the events in a JSON-lines file, leaving out a last
// line still being written.
func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for {
		line, rest, ok := bytes.Cut(b, []byte("\n"))
		if !ok {
			return out
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("%s: line %q: %v", path, line, err)
		}
		out = append(out, m)
		b = rest
	}
}

func eventID(m map[string]any) string {
	ev, _ := m["event"].(map[string]any)
	id, _ := ev["id"].(string)
	return id
}

// TestFileSinkRotation: the file is rotated by size into path.1 … path.N,
// the oldest beyond keep are deleted, no file grows past max-size, and
// the newest events, in order and each whole, are in the kept files.
func TestFileSinkRotation(t *testing.T) {
	st, _ := openStore(t)
	const events, keep, maxSize = 200, 3, 8192
	appendAudit(t, st, 1, events)
	path := filepath.Join(t.TempDir(), "logs", "events.jsonl")
	run(t, st, mustParse(t, fmt.Sprintf("file://%s?max-size=%d&keep=%d", path, maxSize, keep)))
	poll.Until(t, 20*time.Second, "last event in the file", func() error {
		lines := readLines(t, path)
		if len(lines) == 0 || eventID(lines[len(lines)-1]) != AuditEventID(events) {
			return fmt.Errorf("%d lines in the current file", len(lines))
		}
		return nil
	})
	var all []map[string]any
	for i := keep; i >= 1; i-- {
		p := fmt.Sprintf("%s.%d", path, i)
		st, err := os.Stat(p)
		if err != nil {
			t.Fatalf("rotated file %s: %v", p, err)
		}
		if st.Size() > maxSize {
			t.Errorf("%s is %d bytes, over max-size %d", p, st.Size(), maxSize)
		}
		all = append(all, readLines(t, p)...)
	}
	if _, err := os.Stat(fmt.Sprintf("%s.%d", path, keep+1)); !os.IsNotExist(err) {
		t.Errorf("file %d kept beyond keep=%d: %v", keep+1, keep, err)
	}
	all = append(all, readLines(t, path)...)
	if len(all) >= events {
		t.Fatalf("%d events kept in %d files of %d bytes: nothing rotated away", len(all), keep+1, maxSize)
	}
	// The kept events are the newest ones, consecutive.
	for i, m := range all {
		if want := AuditEventID(int64(events - len(all) + 1 + i)); eventID(m) != want {
			t.Fatalf("event %d of the kept files is %s, want %s", i, eventID(m), want)
		}
	}
	first := all[len(all)-1]
	if first["@timestamp"] == nil || first["user"].(map[string]any)["name"] != "ann@example.com" {
		t.Errorf("event without its fields: %v", first)
	}
}
