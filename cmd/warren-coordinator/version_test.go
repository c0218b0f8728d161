package main

import (
	"testing"

	"github.com/warrenmesh/warren/internal/version"
)

func TestVersion(t *testing.T) {
	want := "warren-coordinator " + version.String() + "\n"
	for _, arg := range []string{"version", "--version"} {
		out, err := runCLI(t, arg)
		if err != nil || out != want {
			t.Errorf("warren-coordinator %s = %q, %v; want %q", arg, out, err, want)
		}
	}
	if _, err := runCLI(t, "version", "extra"); err == nil {
		t.Error("warren-coordinator version extra: no error")
	}
}
