package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/warrenmesh/warren/internal/version"
)

func TestVersionFlag(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"--version"}, &out, &errb, nil); err != nil {
		t.Fatalf("warrend --version: %v (%s)", err, errb.String())
	}
	if want := "warrend " + version.String() + "\n"; out.String() != want {
		t.Errorf("warrend --version printed %q, want %q", out.String(), want)
	}
}
