//go:build !linux && !darwin && !windows

package engine

import "errors"

// openKernelTUN is for Linux, macOS and Windows only.
func openKernelTUN(cfg Config) (netDevice, error) {
	return nil, errors.New("engine: kernel TUN mode is available on Linux, macOS and Windows only: leave --tun empty to use userspace mode")
}
