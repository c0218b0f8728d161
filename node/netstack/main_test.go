package netstack

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that Close ends every goroutine the stack started.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
