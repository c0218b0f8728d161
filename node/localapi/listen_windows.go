package localapi

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/Microsoft/go-winio"
	"golang.org/x/sys/windows"

	"github.com/warrenmesh/warren/internal/peercred"
)

// adminName names the OS's administrators in refusals.
const adminName = "SYSTEM, Administrators"

// Listen creates the named pipe at path (\\.\pipe\NAME) with the ACL of
// pipeSDDL: SYSTEM, Administrators and the daemon's user full access,
// a.Group and a.Users read and write. It fails if the pipe exists (another
// warrend, or someone squatting the name). The pipe is in message mode so
// a dial stream can be half-closed.
func Listen(path string, a Access) (net.Listener, error) {
	self, err := peercred.Self()
	if err != nil {
		return nil, fmt.Errorf("localapi: who am I: %w", err)
	}
	sddl, err := pipeSDDL(self, a)
	if err != nil {
		return nil, err
	}
	ln, err := winio.ListenPipe(path, &winio.PipeConfig{SecurityDescriptor: sddl, MessageMode: true})
	if err != nil {
		if errors.Is(err, windows.ERROR_ACCESS_DENIED) || errors.Is(err, windows.ERROR_PIPE_BUSY) {
			return nil, fmt.Errorf("localapi: %s is in use: is another warrend running? (%w)", path, err)
		}
		return nil, fmt.Errorf("localapi: %w", err)
	}
	absorbFirstInstance(path)
	return ln, nil
}

// absorbFirstInstance connects to the new pipe once and hangs up. go-winio
// keeps the pipe's first instance open only to hold the name, and serves
// clients on further instances; Wine (8.0) hands the first client that
// unserved instance, so its request hangs. This connection takes it
// instead (on Windows it reaches a served instance and ends at once).
func absorbFirstInstance(path string) {
	timeout := 2 * time.Second
	if c, err := winio.DialPipe(path, &timeout); err == nil {
		c.Close()
	}
}
