//go:build linux

package magic

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// lowTTL sends packets with a chosen TTL from the bind's IPv4 socket.
//
// wireguard-go's StdNetBind keeps its socket to itself, so lowTTL finds
// it among this process's descriptors (the UDP socket bound to the
// wildcard address and the bind's port) and holds a duplicate of it.
// Sends go through sendmsg with an IP_TTL control message, so they never
// change the TTL of the bind's own packets. It must never read from the
// socket, and it must be closed with the bind (the duplicate would keep
// the port bound).
type lowTTL struct {
	mu sync.RWMutex // held for reading while the descriptor is in use
	fd int          // -1 once closed
}

// errNoSocket is returned when the bind's socket is not among this
// process's descriptors.
var errNoSocket = errors.New("magic: the bind's IPv4 socket was not found")

// openLowTTL finds the IPv4 UDP socket bound to port.
func openLowTTL(port uint16) (*lowTTL, error) {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || !isBindSocket(fd, port) {
			continue
		}
		// The descriptor may have been closed and its number reused since
		// the check: check the duplicate again.
		dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			continue
		}
		if !isBindSocket(dup, port) {
			unix.Close(dup)
			continue
		}
		return &lowTTL{fd: dup}, nil
	}
	return nil, errNoSocket
}

// isBindSocket reports whether fd is an IPv4 UDP socket bound to the
// wildcard address and port.
func isBindSocket(fd int, port uint16) bool {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return false
	}
	in4, ok := sa.(*unix.SockaddrInet4)
	if !ok || in4.Port != int(port) || in4.Addr != [4]byte{} {
		return false
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil || typ != unix.SOCK_DGRAM {
		return false
	}
	proto, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	return err == nil && proto == unix.IPPROTO_UDP
}

// send sends b to the IPv4 address to with the given TTL, without
// blocking.
func (l *lowTTL) send(b []byte, to netip.AddrPort, ttl int) error {
	if !to.Addr().Unmap().Is4() {
		return errors.New("magic: low-TTL sends are IPv4 only")
	}
	oob := make([]byte, unix.CmsgSpace(4))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.IPPROTO_IP, unix.IP_TTL
	h.SetLen(unix.CmsgLen(4))
	binary.NativeEndian.PutUint32(oob[unix.CmsgLen(0):], uint32(ttl))
	sa := &unix.SockaddrInet4{Port: int(to.Port()), Addr: to.Addr().Unmap().As4()}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.fd < 0 {
		return os.ErrClosed
	}
	return unix.Sendmsg(l.fd, b, oob, sa, unix.MSG_DONTWAIT)
}

// close releases the duplicate; a send running now finishes first.
func (l *lowTTL) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fd >= 0 {
		unix.Close(l.fd)
		l.fd = -1
	}
}
