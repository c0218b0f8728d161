package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/internal/version"
)

// TestVersion checks warren version in both forms; it needs no daemon.
func TestVersion(t *testing.T) {
	want := version.Get()
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, _, err := warren(t, args...)
		if err != nil || !strings.HasPrefix(out, "warren "+want.Version+" (") {
			t.Errorf("warren %v = %q, %v; want it to start with %q", args, out, err, "warren "+want.Version)
		}
	}
	out, _, err := warren(t, "version", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got version.Info
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("warren version --json: %v\n%s", err, out)
	}
	if got != want {
		t.Errorf("warren version --json = %+v, want %+v", got, want)
	}
}
