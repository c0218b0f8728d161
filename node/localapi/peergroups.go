package localapi

import (
	"context"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/warrenmesh/warren/internal/peercred"
)

// SO_PEERCRED reports only the caller's primary group, but users are
// usually given the socket group as a supplementary one (usermod -aG), so
// the server also records the caller's supplementary groups.

type groupsKey struct{}

// connContext records the peer's credentials and supplementary groups of
// a unix-socket connection; use it as http.Server.ConnContext.
func connContext(ctx context.Context, c net.Conn) context.Context {
	ctx = peercred.ConnContext(ctx, c)
	if groups, ok := peerGroups(c); ok {
		ctx = context.WithValue(ctx, groupsKey{}, groups)
	}
	return ctx
}

// groupsFromContext returns the supplementary groups connContext recorded.
func groupsFromContext(ctx context.Context) []uint32 {
	g, _ := ctx.Value(groupsKey{}).([]uint32)
	return g
}

// peerGroups asks the kernel for the supplementary groups the peer of c
// had when it connected (SO_PEERGROUPS, Linux 4.13+, so a later setgroups
// or exit and PID reuse cannot change the answer). ok is false for
// anything but a connected unix socket or on older kernels.
func peerGroups(c net.Conn) (groups []uint32, ok bool) {
	uc, isUnix := c.(*net.UnixConn)
	if !isUnix {
		return nil, false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, false
	}
	var gerr error
	if cerr := raw.Control(func(fd uintptr) { groups, gerr = getsockoptPeerGroups(fd) }); cerr != nil || gerr != nil {
		return nil, false
	}
	return groups, true
}

func getsockoptPeerGroups(fd uintptr) ([]uint32, error) {
	buf := make([]uint32, 32)
	for {
		size := uint32(len(buf)) * 4 // socklen_t
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		switch {
		case errno == unix.ERANGE && int(size/4) > len(buf):
			buf = make([]uint32, size/4) // the kernel said how much it needs
		case errno != 0:
			return nil, errno
		default:
			return buf[:size/4], nil
		}
	}
}
