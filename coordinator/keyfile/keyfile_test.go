package keyfile

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestReadRefusesAccessibleFiles(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no permission bits on Windows")
	}
	for _, tc := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true},
		{0o400, true},
		{0o640, false},
		{0o604, false},
		{0o644, false},
		{0o620, false},
		{0o666, false},
	} {
		path := filepath.Join(t.TempDir(), "k")
		if err := Create(path, []byte("secret\n")); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, tc.mode); err != nil {
			t.Fatal(err)
		}
		b, err := Read(path)
		if tc.ok && (err != nil || string(b) != "secret\n") {
			t.Errorf("mode %04o: %q, %v", tc.mode, b, err)
		}
		if !tc.ok && (!errors.Is(err, ErrAccessible) || !strings.Contains(err.Error(), "chmod 600") || b != nil) {
			t.Errorf("mode %04o: %q, %v; want refused with a chmod 600 hint", tc.mode, b, err)
		}
	}
}

func TestCreateAndReplace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k")
	if _, err := Read(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	if err := Create(path, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := Create(path, []byte("two")); !errors.Is(err, os.ErrExist) {
		t.Fatalf("second create: %v", err)
	}
	if err := Replace(path, []byte("three")); err != nil {
		t.Fatal(err)
	}
	b, err := Read(path)
	if err != nil || string(b) != "three" {
		t.Fatalf("after replace: %q, %v", b, err)
	}
	if fi, _ := os.Stat(path); runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %04o", fi.Mode().Perm())
	}
}
