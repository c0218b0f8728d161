package netns

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// supported: this OS has network namespaces.
const supported = true

// Do runs fn on an OS thread that has entered the namespace, so sockets
// (and TUN devices) fn creates belong to it; they stay there when used from
// other goroutines later. Goroutines fn starts run in the caller's
// namespace, and fn must report failure by its error, not tb.Fatal.
func (n *Namespace) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread stays locked, and so is destroyed with the goroutine,
		// unless it gets back to its own namespace.
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			errc <- fmt.Errorf("netns: open own namespace: %w", err)
			return
		}
		defer orig.Close()
		target, err := os.Open(filepath.Join(runDir, n.Name))
		if err != nil {
			errc <- fmt.Errorf("netns: open %s: %w", n.Name, err)
			return
		}
		err = unix.Setns(int(target.Fd()), unix.CLONE_NEWNET)
		target.Close()
		if err != nil {
			errc <- fmt.Errorf("netns: enter %s: %w", n.Name, err)
			return
		}
		ferr := fn()
		// Back home before the caller hears of it: a caller that goes on
		// to remove the namespace must not find this thread inside (if it
		// is the main thread, "ip netns pids" would name this process).
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}
