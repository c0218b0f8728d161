package main

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/warrenmesh/warren/internal/version"
)

func TestVersionFlag(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--version"}, &out, io.Discard); err != nil {
		t.Fatalf("warren-derp --version: %v", err)
	}
	if want := "warren-derp " + version.String() + "\n"; out.String() != want {
		t.Errorf("warren-derp --version printed %q, want %q", out.String(), want)
	}
}
