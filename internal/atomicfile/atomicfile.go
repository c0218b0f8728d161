// Package atomicfile replaces files so that a reader, or a crash, sees the
// old content or the new, never a mix: write a temporary file in the same
// directory, sync it, rename it over the target, sync the directory.
//
// A process killed between creating the temporary file and renaming it
// leaves NAME.tmpDIGITS behind; RemoveStale, called at start, removes
// those. This package never removes or replaces any other file.
package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// tempSuffix and the decimal digits os.CreateTemp puts in place of its
// "*" make a temporary file's name: NAME.tmp1234567890.
const tempSuffix = ".tmp"

// Write replaces path with data, with permissions perm from the first byte
// on (the temporary file is chmod-ed before anything is written to it).
func Write(path string, data []byte, perm fs.FileMode) error {
	dir, name := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, name+tempSuffix+"*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename durable
		d.Close()
	}
	return nil
}

// RemoveStale removes the temporary files Write left in dir for the given
// file names (plain names, not paths) when its process died before the
// rename: regular files named NAME.tmpDIGITS. Nothing else is touched, not
// even NAME.tmp-something-else or a directory of a matching name. Call it
// only while no Write to these files can be running. It returns the names
// it removed; a missing dir is not an error.
func RemoveStale(dir string, names ...string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		if !e.Type().IsRegular() || !isTempOf(e.Name(), names) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, e.Name())
	}
	return removed, errors.Join(errs...)
}

// isTempOf reports whether file is NAME.tmpDIGITS for one of names.
func isTempOf(file string, names []string) bool {
	for _, name := range names {
		digits, ok := strings.CutPrefix(file, name+tempSuffix)
		if ok && digits != "" && strings.Trim(digits, "0123456789") == "" {
			return true
		}
	}
	return false
}
