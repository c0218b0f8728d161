package peercred

import (
	"net"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

var osAdmins = UnixAdmins

// xucredVersion is XUCRED_VERSION of <sys/ucred.h>.
const xucredVersion = 0

func selfUser() (string, error) { return strconv.Itoa(os.Getuid()), nil }

// of reads LOCAL_PEERCRED (the xucred the peer had when it connected: uid
// and up to 16 groups, the effective gid first, as getpeereid(3) does) and
// LOCAL_PEERPID for the pid (0 if the kernel does not say).
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
		xu   *unix.Xucred
		pid  int
		perr error
	)
	cerr := raw.Control(func(fd uintptr) {
		xu, err = unix.GetsockoptXucred(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
		pid, perr = unix.GetsockoptInt(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERPID)
	})
	if cerr != nil || err != nil || xu == nil || xu.Version != xucredVersion {
		return Cred{}, false
	}
	cred := Cred{User: strconv.FormatUint(uint64(xu.Uid), 10)}
	if perr == nil {
		cred.PID = int32(pid)
	}
	for _, g := range xu.Groups[:min(max(int(xu.Ngroups), 0), len(xu.Groups))] {
		cred.Groups = append(cred.Groups, strconv.FormatUint(uint64(g), 10))
	}
	return cred, true
}
