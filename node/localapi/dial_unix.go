//go:build !windows

package localapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
)

func dial(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
			return nil, fmt.Errorf("warrend is not running (no socket at %s): start it, or pass --socket", path)
		case errors.Is(err, os.ErrPermission):
			return nil, fmt.Errorf("no permission to use %s: run as root or as a member of warrend's group", path)
		}
		return nil, err
	}
	return conn, nil
}
