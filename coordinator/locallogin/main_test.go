package locallogin

import (
	"testing"

	"go.uber.org/goleak"
)

// productionParams are the argon2 parameters HashPassword uses outside
// tests; TestMain lowers defaultParams so the many hashes of the flow tests
// stay fast under the race detector.
var productionParams = defaultParams

// TestMain checks that nothing in this package (or its tests) leaks a
// goroutine.
func TestMain(m *testing.M) {
	defaultParams = argonParams{memory: 256, time: 1, threads: 1, saltLen: 16, keyLen: 32}
	goleak.VerifyTestMain(m)
}
