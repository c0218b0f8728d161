package localapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/Microsoft/go-winio"
	"golang.org/x/sys/windows"
)

// dial connects to warrend's named pipe at the identification level, so
// the server can read this process's token (and not act as it).
func dial(ctx context.Context, path string) (net.Conn, error) {
	conn, err := winio.DialPipeAccessImpLevel(ctx, path, windows.GENERIC_READ|windows.GENERIC_WRITE, winio.PipeImpLevelIdentification)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist), errors.Is(err, windows.ERROR_FILE_NOT_FOUND):
			return nil, fmt.Errorf("warrend is not running (no pipe at %s): start it, or pass --socket", path)
		case errors.Is(err, os.ErrPermission), errors.Is(err, windows.ERROR_ACCESS_DENIED):
			return nil, fmt.Errorf("no permission to use %s: run as an administrator or as a member of warrend's group", path)
		}
		return nil, err
	}
	return conn, nil
}
