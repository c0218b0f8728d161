//go:build !linux

package engine

import (
	"errors"
	"net/netip"
	"syscall"
)

// errExitTUN says exit nodes in kernel TUN mode are Linux only so far.
var errExitTUN = errors.New("engine: using an exit node in TUN mode is not supported on this OS yet (userspace mode's proxy works)")

// CheckExitNode reports whether this OS can use an exit node in the
// given mode: userspace mode only.
func CheckExitNode(tunMode bool) error {
	if tunMode {
		return errExitTUN
	}
	return nil
}

// markConn leaves sockets unmarked: exit-node routing in TUN mode is
// Linux only so far.
func markConn(syscall.RawConn) error { return nil }

// exitRouting: sending all traffic to an exit node in TUN mode is not
// supported on this OS yet (userspace mode's proxy works everywhere).
func exitRouting(_ string, _ []netip.Addr, on, _ bool) error {
	if on {
		return errExitTUN
	}
	return nil
}
