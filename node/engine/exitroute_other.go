//go:build !linux

package engine

import (
	"errors"
	"net/netip"
	"syscall"
)

// markConn leaves sockets unmarked: exit-node routing in TUN mode is
// Linux only so far.
func markConn(syscall.RawConn) error { return nil }

// exitRouting: sending all traffic to an exit node in TUN mode is not
// supported on this OS yet (userspace mode's proxy works everywhere).
func exitRouting(_ string, _ []netip.Addr, on, _ bool) error {
	if on {
		return errors.New("engine: using an exit node in TUN mode is not supported on this OS yet (userspace mode's proxy works)")
	}
	return nil
}
