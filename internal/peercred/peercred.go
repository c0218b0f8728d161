// Package peercred records who is on the other end of a unix-socket
// connection (SO_PEERCRED), so local APIs can authorise by user ID on top
// of the socket's file permissions.
package peercred

import (
	"context"
	"net"

	"golang.org/x/sys/unix"
)

// Cred is the peer process's identity as the kernel reports it.
type Cred struct {
	PID int32
	UID uint32
	GID uint32
}

type ctxKey struct{}

// ConnContext records the peer credentials of a unix-socket connection.
// Use it as http.Server.ConnContext; FromContext reads them back.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if cred, ok := Of(c); ok {
		return context.WithValue(ctx, ctxKey{}, cred)
	}
	return ctx
}

// FromContext returns the credentials ConnContext recorded.
func FromContext(ctx context.Context) (Cred, bool) {
	c, ok := ctx.Value(ctxKey{}).(Cred)
	return c, ok
}

// Of asks the kernel who is on the other end of c; ok is false for
// anything but a connected unix socket.
func Of(c net.Conn) (Cred, bool) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Cred{}, false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Cred{}, false
	}
	var ucred *unix.Ucred
	cerr := raw.Control(func(fd uintptr) {
		ucred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if cerr != nil || err != nil || ucred == nil {
		return Cred{}, false
	}
	return Cred{PID: ucred.Pid, UID: ucred.Uid, GID: ucred.Gid}, true
}
