// Package peercred records who is on the other end of a local connection
// (a unix socket, or a named pipe on Windows), as the operating system
// reports it, and decides from that whether the caller may use a local
// API: the OS's administrators, the server's own user, and the members of
// one configured group.
//
// The identity is always the kernel's answer for the connected peer, never
// anything the peer says about itself. Of never guesses: when the OS does
// not say who the peer is, it returns ok=false and callers must deny. This
// package must never decide from the connection's address or from data the
// peer sent, and the decision (Policy.Allows) must stay a pure function,
// the same on every OS, so its tests run everywhere.
package peercred

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
)

// Cred is the peer process's identity as the OS reports it, in the same
// shape on every OS: on unix User is the uid and Groups the gids (the
// primary group first, then the supplementary ones the kernel reports), in
// decimal; on Windows User is the SID of the caller's token and Groups the
// SIDs of its enabled groups (deny-only groups, such as Administrators in
// a non-elevated token, are left out).
type Cred struct {
	PID    int32 // 0 when the OS does not say
	User   string
	Groups []string
}

// String describes c for logs.
func (c Cred) String() string {
	return fmt.Sprintf("user=%s groups=[%s] pid=%d", c.User, strings.Join(c.Groups, " "), c.PID)
}

type ctxKey struct{}

// ConnContext records the peer credentials of a local connection. Use it
// as http.Server.ConnContext; FromContext reads them back.
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

// Of asks the OS who is on the other end of c; ok is false for anything
// but a connected local socket or pipe, or when the OS does not say.
func Of(c net.Conn) (Cred, bool) { return of(c) }

// Self returns this process's own user (a uid in decimal, or a SID).
func Self() (string, error) { return selfUser() }

// Admins are the users and groups the OS treats as its administrators.
type Admins struct {
	Users  []string
	Groups []string
}

// UnixAdmins: root.
var UnixAdmins = Admins{Users: []string{"0"}}

// WindowsAdmins: LocalSystem (the account services run as) and the
// members of the built-in Administrators group (in an elevated token; a
// non-elevated one has the group only for deny).
var WindowsAdmins = Admins{Users: []string{sidSystem}, Groups: []string{sidAdministrators}}

// Well-known SIDs.
const (
	sidSystem         = "S-1-5-18"
	sidAdministrators = "S-1-5-32-544"
)

// OSAdmins returns this OS's administrators (UnixAdmins or WindowsAdmins).
func OSAdmins() Admins { return osAdmins }

// Policy says who may use a local API: the OS's administrators, the
// server's own user (Owner), the users in Users (on Windows, for example,
// the user who installed the service) and the members of Group (a gid or
// a SID; "" for none).
type Policy struct {
	Admins Admins
	Owner  string
	Users  []string
	Group  string
}

// Allows reports whether a caller with credentials c may use the API.
func (p Policy) Allows(c Cred) bool {
	if c.User == "" {
		return false // the OS did not say: deny
	}
	if c.User == p.Owner || slices.Contains(p.Admins.Users, c.User) || slices.Contains(p.Users, c.User) {
		return true
	}
	for _, g := range c.Groups {
		if g == "" {
			continue
		}
		if slices.Contains(p.Admins.Groups, g) {
			return true
		}
		if p.Group != "" && g == p.Group {
			return true
		}
	}
	return false
}
