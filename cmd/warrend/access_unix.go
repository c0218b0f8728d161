//go:build !windows

package main

import (
	"os/user"

	"github.com/warrenmesh/warren/node/localapi"
)

// socketAccess resolves --socket-group: a group name.
func socketAccess(name string) (localapi.Access, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return localapi.Access{}, err
	}
	return localapi.Access{Group: g.Gid}, nil
}
