package coordinator_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that a coordinator leaves no goroutine behind once
// closed, attacks included.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
