//go:build !windows

package localapi

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// adminName names the OS's administrators in refusals.
const adminName = "root"

// Listen creates the unix socket at path (and its directory), replacing a
// stale one, readable and writable by the daemon's user only (mode 0600),
// or also by a.Group (mode 0660 with that group).
func Listen(path string, a Access) (net.Listener, error) {
	if len(a.Users) > 0 {
		return nil, errors.New("localapi: a unix socket grants access to one group, not to users: use a group")
	}
	gid := -1
	if a.Group != "" {
		g, err := strconv.Atoi(a.Group)
		if err != nil || g < 0 {
			return nil, fmt.Errorf("localapi: group %q is not a gid", a.Group)
		}
		gid = g
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("localapi: create socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("localapi: %s exists and is not a socket; refusing to replace it", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("localapi: %s is in use: is another warrend running?", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("localapi: remove stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("localapi: %w", err)
	}
	mode := os.FileMode(0o600)
	if gid >= 0 {
		mode = 0o660
		if err := os.Chown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("localapi: give socket to group %d: %w", gid, err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("localapi: %w", err)
	}
	return ln, nil
}
