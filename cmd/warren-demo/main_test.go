package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/buildtest"
)

// TestDemoMesh runs make run's demo with real processes: coordinator, two
// warrend nodes, a service reached through the proxy.
func TestDemoMesh(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	bin := buildtest.Build(t, "warren-coordinator", "warrend", "warren")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, []string{"--bin", bin, "--state-dir", t.TempDir(), "--listen", buildtest.FreePort(t),
		"--proxy", buildtest.FreePort(t), "--service", buildtest.FreePort(t), "--once"}, &out)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), `"hello from the server node's web service`) {
		t.Fatalf("demo did not reach the service:\n%s", out.String())
	}
}
