//go:build unix

package connlimit

import "syscall"

// descriptorLimit returns the process's soft limit on open files (which
// the Go runtime raises to the hard limit at start on Linux), or 0 if
// unknown.
func descriptorLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return rl.Cur
}
