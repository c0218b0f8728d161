package policyfile

import "os"

// fileOwner does not name an owner on Windows: the author is the path only.
func fileOwner(os.FileInfo) (string, bool) { return "", false }
