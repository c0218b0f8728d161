//go:build !windows

package keyfile

import (
	"fmt"
	"io/fs"
)

// checkMode refuses a file whose permission bits give group or others any
// access.
func checkMode(path string, fi fs.FileInfo) error {
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s is %w (mode %04o); it holds private keys: run chmod 600 %s", path, ErrAccessible, perm, path)
	}
	return nil
}
