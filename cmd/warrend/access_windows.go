package main

import (
	"fmt"
	"os/user"

	"golang.org/x/sys/windows"

	"github.com/warrenmesh/warren/node/localapi"
)

// socketAccess resolves --socket-group: a group or a user (such as the one
// who installed the service), by name or SID. Go's os/user gives SIDs as
// the IDs on Windows.
func socketAccess(name string) (localapi.Access, error) {
	if g, err := user.LookupGroup(name); err == nil {
		return localapi.Access{Group: g.Gid}, nil
	}
	if g, err := user.LookupGroupId(name); err == nil {
		return localapi.Access{Group: g.Gid}, nil
	}
	if u, err := user.Lookup(name); err == nil {
		return localapi.Access{Users: []string{u.Uid}}, nil
	}
	if u, err := user.LookupId(name); err == nil {
		return localapi.Access{Users: []string{u.Uid}}, nil
	}
	sid, err := windows.StringToSid(name)
	if err != nil {
		return localapi.Access{}, fmt.Errorf("%q is neither a group, a user nor a SID", name)
	}
	// A SID the account database does not know: grant it as both, as only
	// one of the two can ever match a caller.
	return localapi.Access{Group: sid.String(), Users: []string{sid.String()}}, nil
}
