package main

import (
	"os"
	"testing"

	"github.com/warrenmesh/warren/internal/tstest/pgtest"
)

// TestMain runs the throwaway PostgreSQL server for the tests that use
// one (started on first use, stopped at the end).
func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m))
}
