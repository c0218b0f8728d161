package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/node/daemon"
)

// TestPostureIntervalFlag: --posture-interval defaults to 5m, takes any
// interval of at least 10s, and refuses a shorter one before starting
// anything.
func TestPostureIntervalFlag(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want time.Duration
		err  string
	}{
		{nil, daemon.DefaultPostureInterval, ""},
		{[]string{"--posture-interval", "10s"}, 10 * time.Second, ""},
		{[]string{"--posture-interval", "1h"}, time.Hour, ""},
		{[]string{"--posture-interval", "9s"}, 0, "--posture-interval 9s is too short"},
		{[]string{"--posture-interval", "0"}, 0, "--posture-interval 0s is too short"},
	} {
		var errb bytes.Buffer
		fs, o := newFlags("warrend", &errb)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		cfg, err := o.config()
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%v: %v, want an error containing %q", tt.args, err, tt.err)
		case tt.err == "" && (err != nil || cfg.PostureInterval != tt.want):
			t.Errorf("%v: interval %v, %v; want %v", tt.args, cfg.PostureInterval, err, tt.want)
		}
	}
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"--state-dir", t.TempDir(), "--posture-interval", "1s"}, &out, &errb, nil)
	if err == nil || !strings.Contains(err.Error(), "at most every 10s") {
		t.Errorf("warrend --posture-interval 1s: %v, want a refusal", err)
	}
}
