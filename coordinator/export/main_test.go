package export

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/warrenmesh/warren/coordinator/store"
)

// TestMain checks that Run ends every goroutine it started.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// openStore opens a real SQLite store in a temporary directory.
func openStore(t testing.TB) (store.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "warren.db")
	st, err := store.Open(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, path
}

// appendAudit appends n audit events numbered from first.
func appendAudit(t testing.TB, st store.Store, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		outcome := "ok"
		if i%3 == 0 {
			outcome = "denied"
		}
		err := st.AppendAudit(context.Background(), store.AuditEvent{Time: time.Unix(1_700_000_000+int64(i), 0),
			Actor: "user:ann@example.com", Action: "node.register", Target: fmt.Sprintf("node:%d", i),
			Remote: "192.0.2.7:41000", Outcome: outcome, Detail: fmt.Sprintf(`{"n":%d}`, i)})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// run starts an exporter over st's audit trail with fast polling and
// backoff, and returns a function that stops it and waits for its end.
func run(t testing.TB, st store.Store, sinks ...SinkConfig) (stop func()) {
	t.Helper()
	x, err := New(Config{Sinks: sinks, Sources: []Source{AuditSource{Store: st}}, Cursors: st,
		Poll: 20 * time.Millisecond, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		DeliverTimeout: 5 * time.Second, Batch: 50, Logger: slog.New(slog.NewTextHandler(tlogWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		x.Run(ctx)
	}()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

func mustParse(t testing.TB, s string) SinkConfig {
	t.Helper()
	c, err := ParseURL(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tlogWriter writes a logger's lines to the test's log.
type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
