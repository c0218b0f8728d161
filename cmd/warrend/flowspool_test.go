package main

import (
	"bytes"
	"testing"
)

// TestFlowSpoolSizeFlag: --flow-spool-size defaults to 64 MiB, takes bytes
// or KiB/MiB/GiB, turns flow logs off at 0 and refuses anything else.
func TestFlowSpoolSizeFlag(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want int64
		bad  bool
	}{
		{nil, 64 << 20, false},
		{[]string{"--flow-spool-size", "1GiB"}, 1 << 30, false},
		{[]string{"--flow-spool-size", "512KiB"}, 512 << 10, false},
		{[]string{"--flow-spool-size", "100000"}, 100000, false},
		{[]string{"--flow-spool-size", "0"}, -1, false},
		{[]string{"--flow-spool-size", "-5"}, 0, true},
		{[]string{"--flow-spool-size", "64MB"}, 0, true},
	} {
		var errb bytes.Buffer
		fs, o := newFlags("warrend", &errb)
		err := fs.Parse(tt.args)
		if tt.bad {
			if err == nil {
				t.Errorf("%v: accepted", tt.args)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		cfg, err := o.config()
		if err != nil || cfg.FlowSpoolSize != tt.want {
			t.Errorf("%v: size %d, %v; want %d", tt.args, cfg.FlowSpoolSize, err, tt.want)
		}
	}
}
