//go:build !linux

package magic

import (
	"errors"
	"net/netip"
)

// lowTTL would send packets with a chosen TTL from the bind's socket; only
// Linux has it (see opener_linux.go). Elsewhere discovery does without
// openers.
type lowTTL struct{}

func openLowTTL(port uint16) (*lowTTL, error) {
	return nil, errors.ErrUnsupported
}

func (*lowTTL) send(b []byte, to netip.AddrPort, ttl int) error { return errors.ErrUnsupported }

func (*lowTTL) close() {}
