//go:build windows

package keyfile

import "io/fs"

// checkMode accepts every file: Windows has no permission bits to check
// (access is by ACL, which the state directory's ACL governs).
func checkMode(path string, fi fs.FileInfo) error { return nil }
