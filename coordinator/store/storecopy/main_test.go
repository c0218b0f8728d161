package storecopy

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/warrenmesh/warren/internal/tstest/pgtest"
)

// TestMain runs the throwaway PostgreSQL server for the tests that use
// one and checks that nothing leaks a goroutine.
func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(leakCheck{m}))
}

// leakCheck runs the tests, then fails them if goroutines are left.
type leakCheck struct{ m *testing.M }

func (l leakCheck) Run() int {
	code := l.m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			return 1
		}
	}
	return code
}
