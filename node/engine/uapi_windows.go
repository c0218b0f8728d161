package engine

import (
	"net"

	"golang.zx2c4.com/wireguard/ipc"
)

// listenUAPI opens WireGuard's named pipe for NAME, which only
// Administrators and SYSTEM may open, as wireguard-go does.
func listenUAPI(name string) (net.Listener, error) {
	return ipc.UAPIListen(name)
}
