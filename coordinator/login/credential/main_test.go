package credential

import (
	"testing"

	"go.uber.org/goleak"
)

// productionParams are the argon2 parameters HashPassword uses outside
// tests; TestMain lowers defaultParams so that the many hashes of the
// tests stay fast under the race detector.
var productionParams = defaultParams

func TestMain(m *testing.M) {
	defaultParams = argonParams{memory: 256, time: 1, threads: 1, saltLen: 16, keyLen: 32}
	goleak.VerifyTestMain(m)
}
