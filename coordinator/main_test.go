package coordinator_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/warrenmesh/warren/internal/tstest/pgtest"
)

// TestMain checks that a coordinator leaves no goroutine behind once
// closed, attacks included. Tests that need PostgreSQL get a throwaway
// server (pgtest), stopped at the end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(withPostgres{m})
}

// withPostgres runs the tests through pgtest.Main.
type withPostgres struct{ m *testing.M }

func (w withPostgres) Run() int { return pgtest.Main(w.m) }
