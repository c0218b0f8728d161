//go:build !linux

package engine

import (
	"errors"
	"log/slog"
)

// kernelRouter is Linux only.
type kernelRouter struct{}

func (*kernelRouter) Close() error { return nil }

func startKernelRouter(tun string, snat bool, log *slog.Logger) (*kernelRouter, error) {
	return nil, errRouterUnsupported
}

// setSubnetRoutes is for a kernelDevice of an OS with no routing of its
// own; macOS (utunDevice) and Windows (wintunDevice) devices have theirs.
func (d *kernelDevice) setSubnetRoutes(add, del []tunRoute) error {
	if len(add) == 0 && len(del) == 0 {
		return nil
	}
	return errors.New("engine: routes to peers' subnets in TUN mode are not supported on this OS yet: reach them through the proxy in userspace mode")
}
