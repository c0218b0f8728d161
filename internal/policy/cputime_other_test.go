//go:build !linux

package policy

import (
	"testing"
	"time"
)

func cpuPerOp(tb testing.TB, f func()) time.Duration {
	tb.Skip("needs a per-thread CPU clock (Linux)")
	return 0
}
