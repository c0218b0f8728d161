package export

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/tstest/poll"
)

// TestResumeAfterRestart: a coordinator restart (a new store and
// exporter on the same database) resumes each sink from its cursor: the
// file gets every event once, in order, across the restart.
func TestResumeAfterRestart(t *testing.T) {
	st, dbPath := openStore(t)
	path := filepath.Join(t.TempDir(), "events.jsonl")
	sink := mustParse(t, "file://"+path)
	appendAudit(t, st, 1, 30)
	stop := run(t, st, sink)
	waitLines(t, path, 30)
	stop()
	must(t, st.Close())

	st2, err := store.Open(context.Background(), dbPath, nil)
	must(t, err)
	defer st2.Close()
	appendAudit(t, st2, 31, 20)
	run(t, st2, sink)
	lines := waitLines(t, path, 50)
	for i, m := range lines {
		if want := AuditEventID(int64(i + 1)); eventID(m) != want {
			t.Fatalf("line %d is %s, want %s (delivered twice or skipped across the restart)", i, eventID(m), want)
		}
	}
}

func waitLines(t *testing.T, path string, n int) []map[string]any {
	t.Helper()
	var lines []map[string]any
	poll.Until(t, 20*time.Second, fmt.Sprintf("%d events in %s", n, path), func() error {
		lines = readLines(t, path)
		if len(lines) < n {
			return fmt.Errorf("%d lines", len(lines))
		}
		return nil
	})
	return lines
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// flakySink fails its first failures deliveries, then records batches.
type flakySink struct {
	mu       sync.Mutex
	failures int
	attempts int
	got      []string
}

func (s *flakySink) Deliver(_ context.Context, events []Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts++
	if s.attempts <= s.failures {
		return errors.New("receiver down")
	}
	for _, e := range events {
		s.got = append(s.got, e.Event.ID)
	}
	return nil
}

func (s *flakySink) Close() error { return nil }

// TestRetryDoesNotAdvance: a failed delivery leaves the cursor where it
// was, and the same batch is delivered again until it is taken.
func TestRetryDoesNotAdvance(t *testing.T) {
	st, _ := openStore(t)
	appendAudit(t, st, 1, 10)
	fs := &flakySink{failures: 4}
	x, err := New(Config{Sinks: []SinkConfig{{Name: "flaky"}}, Sources: []Source{AuditSource{Store: st}}, Cursors: st,
		Poll: 10 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		open: func(SinkConfig) (Sink, error) { return fs, nil }})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); x.Run(ctx) }()
	defer func() { cancel(); <-done }()
	var cur int64
	poll.UntilTrue(t, 20*time.Second, "10 events delivered and the cursor recorded", func() bool {
		c, err := st.SinkCursor(ctx, "flaky", "audit")
		must(t, err)
		fs.mu.Lock()
		defer fs.mu.Unlock()
		cur = c
		return len(fs.got) >= 10 && c == 10
	})
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.attempts < 5 || len(fs.got) != 10 || fs.got[0] != AuditEventID(1) || cur != 10 {
		t.Fatalf("after 4 failures: %d attempts, delivered %v, cursor %d", fs.attempts, fs.got, cur)
	}
}

func TestBackoff(t *testing.T) {
	x := &Exporter{cfg: Config{MinBackoff: time.Second, MaxBackoff: time.Minute}}
	for attempt, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute, time.Minute} {
		for range 20 {
			if d := x.backoff(attempt); d > want || d < want*3/4 {
				t.Fatalf("backoff(%d) = %v, want %v less up to a quarter", attempt, d, want)
			}
		}
	}
	if d := x.backoff(1000); d > time.Minute {
		t.Fatalf("backoff(1000) = %v, over the cap", d)
	}
}
