package peercred

import (
	"net"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

var osAdmins = UnixAdmins

func selfUser() (string, error) { return strconv.Itoa(os.Getuid()), nil }

// of reads SO_PEERCRED (uid, gid, pid) and SO_PEERGROUPS (the supplementary
// groups, Linux 4.13+): both as the peer was when it connected, so a later
// setgroups, or its exit and PID reuse, cannot change the answer. Users are
// usually given a socket's group as a supplementary one (usermod -aG), so
// without SO_PEERGROUPS only the primary group counts.
func of(c net.Conn) (Cred, bool) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Cred{}, false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Cred{}, false
	}
	var (
		ucred  *unix.Ucred
		groups []uint32
		gerr   error
	)
	cerr := raw.Control(func(fd uintptr) {
		ucred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		groups, gerr = peerGroups(fd)
	})
	if cerr != nil || err != nil || ucred == nil {
		return Cred{}, false
	}
	cred := Cred{PID: ucred.Pid, User: strconv.FormatUint(uint64(ucred.Uid), 10), Groups: []string{strconv.FormatUint(uint64(ucred.Gid), 10)}}
	if gerr == nil {
		for _, g := range groups {
			cred.Groups = append(cred.Groups, strconv.FormatUint(uint64(g), 10))
		}
	}
	return cred, true
}

func peerGroups(fd uintptr) ([]uint32, error) {
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
