package main

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/internal/tstest/promscrape"
)

// TestServeMetricsListen: serve --metrics-listen prints its metrics URL
// and serves the coordinator's and its embedded relay's series there.
func TestServeMetricsListen(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, []string{"--state-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--stun-listen", "",
			"--metrics-listen", "127.0.0.1:0"}, pw, io.Discard)
		pw.Close()
	}()
	defer func() {
		cancel()
		go func() { _, _ = io.Copy(io.Discard, pr) }() // drain until serve returns
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	url := ""
	sc := bufio.NewScanner(pr)
	for url == "" && sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "metrics:"); ok {
			url = strings.TrimSpace(rest)
		}
	}
	if url == "" {
		t.Fatal("serve printed no metrics URL")
	}
	f := promscrape.Scrape(t, url)
	for _, name := range []string{"warren_coordinator_connected_nodes", "warren_coordinator_policy_reloads_total",
		"warren_relay_clients", "go_goroutines"} {
		if !f.Has(name) {
			t.Errorf("%s missing; have %s", name, f.Names())
		}
	}
	if v, _ := f.Value("warren_coordinator_policy_reloads_total", "result", "applied"); v < 1 {
		t.Errorf("policy loads = %v, want the first load counted", v)
	}
}
