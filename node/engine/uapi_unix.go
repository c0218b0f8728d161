//go:build linux || darwin

package engine

import (
	"net"

	"golang.zx2c4.com/wireguard/ipc"
)

// listenUAPI opens /var/run/wireguard/NAME.sock (0600: root only), as
// wireguard-go does, taking over a stale socket but not a live one.
func listenUAPI(name string) (net.Listener, error) {
	f, err := ipc.UAPIOpen(name)
	if err != nil {
		return nil, err
	}
	defer f.Close() // UAPIListen keeps its own copy
	return ipc.UAPIListen(name, f)
}
