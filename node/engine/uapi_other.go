//go:build !linux && !darwin && !windows

package engine

import (
	"errors"
	"net"
)

func listenUAPI(string) (net.Listener, error) {
	return nil, errors.New("this OS has no WireGuard UAPI socket in Warren")
}
