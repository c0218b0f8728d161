// Package keyfile reads and creates the coordinator's small private files
// (coordinator.key, secrets.key): created owner-only (0600), refused when
// other users may read or write them, as warrend refuses a readable state
// file.
//
// It must never loosen a file's mode, and never return the contents of a
// file other users can access.
package keyfile

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// MaxSize bounds what Read reads: key files are a few hundred bytes.
const MaxSize = 64 << 10

// ErrAccessible is returned (wrapped) for a file that other users can
// access.
var ErrAccessible = errors.New("accessible to other users")

// Read returns the contents of the private file at path. It fails with an
// error wrapping os.ErrNotExist when there is none, and with one wrapping
// ErrAccessible, saying to run chmod 600, when its mode gives group or
// others any access.
func Read(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := checkMode(path, fi); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%s is larger than %d bytes, more than any key file (corrupt?)", path, MaxSize)
	}
	return b, nil
}

// Create writes data to a new file at path, mode 0600. It fails if the
// file exists (os.ErrExist), so two starts never overwrite each other's
// key; a partly written file is removed.
func Create(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// Replace writes data to path atomically (a 0600 temporary file renamed
// over it), for a file that changes, such as a key ring gaining a key.
func Replace(path string, data []byte) error {
	tmp := path + ".new"
	os.Remove(tmp)
	if err := Create(tmp, data); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
