package policy

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// cpuPerOp returns the CPU time one call of f spends on the calling thread,
// the least of three measurements. Each measurement repeats f until it has
// used at least a few milliseconds, so timer granularity does not matter.
// The goroutine is locked to its thread and only that thread's CPU time
// counts, so time spent descheduled on a busy machine does not: the result
// measures work, not the clock.
func cpuPerOp(tb testing.TB, f func()) time.Duration {
	tb.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	best := time.Duration(-1)
	for range 3 {
		runtime.GC() // start each measurement from the same heap
		start, iters := threadCPU(tb), 0
		var used time.Duration
		for used < 2*time.Millisecond {
			f()
			iters++
			used = threadCPU(tb) - start
		}
		if per := used / time.Duration(iters); best < 0 || per < best {
			best = per
		}
	}
	return best
}

func threadCPU(tb testing.TB) time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		tb.Fatalf("thread CPU clock: %v", err)
	}
	return time.Duration(ts.Nano())
}
