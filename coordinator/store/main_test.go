package store

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/warrenmesh/warren/internal/tstest/pgtest"
)

// TestMain runs the tests with the throwaway PostgreSQL server (started
// by the first test that needs it, stopped at the end), and checks that
// Close ends every goroutine the store started.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(withPostgres{m})
}

// withPostgres runs the tests through pgtest.Main.
type withPostgres struct{ m *testing.M }

func (w withPostgres) Run() int { return pgtest.Main(w.m) }
