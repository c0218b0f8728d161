//go:build !linux

package engine

import "errors"

// openKernelTUN is Linux only for now.
func openKernelTUN(cfg Config) (netDevice, error) {
	return nil, errors.New("engine: kernel TUN mode is only available on Linux: leave --tun empty to use userspace mode")
}
