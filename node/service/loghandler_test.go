package service

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

type record struct {
	level slog.Level
	text  string
}

type recorder struct {
	mu   sync.Mutex
	recs []record
}

func (r *recorder) sink(l slog.Level, text string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, record{l, text})
	return nil
}

func TestSinkHandler(t *testing.T) {
	var rec recorder
	log := slog.New(NewSinkHandler(rec.sink, slog.LevelInfo))
	log.Debug("hidden")
	log.Info("warrend running", "mode", "userspace")
	log.With("part", "localapi").WithGroup("req").Warn("refused", "uid", 1000)
	log.Error("stopped", "err", "boom")
	want := []record{
		{slog.LevelInfo, `level=INFO msg="warrend running" mode=userspace`},
		{slog.LevelWarn, `level=WARN msg=refused part=localapi req.uid=1000`},
		{slog.LevelError, `level=ERROR msg=stopped err=boom`},
	}
	if len(rec.recs) != len(want) {
		t.Fatalf("got %d records, want %d: %v", len(rec.recs), len(want), rec.recs)
	}
	for i, w := range want {
		if rec.recs[i] != w {
			t.Errorf("record %d = %v %q, want %v %q", i, rec.recs[i].level, rec.recs[i].text, w.level, w.text)
		}
	}
}

// TestSinkHandlerConcurrent logs from many goroutines through derived
// handlers sharing one buffer; every record must arrive whole.
func TestSinkHandlerConcurrent(t *testing.T) {
	var rec recorder
	log := slog.New(NewSinkHandler(rec.sink, slog.LevelInfo))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := log.With("g", g)
			for i := range 50 {
				l.InfoContext(context.Background(), "tick", "i", i)
			}
		}()
	}
	wg.Wait()
	if len(rec.recs) != 400 {
		t.Fatalf("got %d records, want 400", len(rec.recs))
	}
	for _, r := range rec.recs {
		if !strings.HasPrefix(r.text, `level=INFO msg=tick g=`) || strings.Count(r.text, "level=") != 1 || strings.Contains(r.text, "\n") {
			t.Fatalf("torn record %q", r.text)
		}
	}
}
