package engine

import "errors"

// openKernelTUN opens a kernel TUN device (root only).
func openKernelTUN(cfg Config) (netDevice, error) {
	return nil, errors.New("engine: kernel TUN mode is not built yet")
}
