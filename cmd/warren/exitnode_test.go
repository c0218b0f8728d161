package main

import (
	"errors"
	"flag"
	"io"
	"testing"

	"github.com/warrenmesh/warren/internal/cli"
	"github.com/warrenmesh/warren/node/localapi"
)

// TestExitNodeFlags: only the flags given change the node's choice;
// --exit-node= clears it; warrend's refusal is a usage error.
func TestExitNodeFlags(t *testing.T) {
	tests := []struct {
		args     []string
		exit     *string
		allowLAN *bool
	}{
		{nil, nil, nil},
		{[]string{"--exit-node", "exit-1"}, ptr("exit-1"), nil},
		{[]string{"--exit-node="}, ptr(""), nil},
		{[]string{"--exit-node-allow-lan-access"}, nil, ptr(true)},
		{[]string{"--exit-node", " 100.64.0.1 ", "--exit-node-allow-lan-access=false"}, ptr("100.64.0.1"), ptr(false)},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("up", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		exit := fs.String("exit-node", "", "")
		allowLAN := fs.Bool("exit-node-allow-lan-access", false, "")
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		var req localapi.UpRequest
		exitNodeFlags(fs, *exit, *allowLAN, &req)
		if !eqPtr(req.ExitNode, tt.exit) || !eqPtr(req.ExitNodeAllowLANAccess, tt.allowLAN) {
			t.Errorf("%q: exit %v allowLAN %v", tt.args, req.ExitNode, req.ExitNodeAllowLANAccess)
		}
	}
	var ee *cli.ExitError
	if err := exitNodeRefused(errors.New(`exit node "x": not an exit node this node may use`)); !errors.As(err, &ee) || ee.Code != 2 {
		t.Errorf("refusal: %v", err)
	}
	if err := exitNodeRefused(errors.New("connection refused")); errors.As(err, &ee) {
		t.Errorf("other errors are not usage errors: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

func eqPtr[T comparable](a, b *T) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
