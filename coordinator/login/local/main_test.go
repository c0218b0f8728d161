package local

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that nothing in this package (or its tests) leaks a
// goroutine.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
