//go:build !windows

package localapi

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// socketMode returns the permission bits and group of the file at path.
func socketMode(t *testing.T, path string) (os.FileMode, uint32) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("%s is %v, not a socket", path, fi.Mode())
	}
	return fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Gid
}

func TestListenModes(t *testing.T) {
	tests := []struct {
		name string
		gid  int
		mode os.FileMode
	}{
		{"owner only", -1, 0o600},
		{"own group", os.Getgid(), 0o660},
	}
	if os.Getuid() == 0 {
		tests = append(tests, struct {
			name string
			gid  int
			mode os.FileMode
		}{"other group", 65533, 0o660})
	}
	// A permissive umask must not widen the socket.
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "warrend.sock")
			ln, err := Listen(path, groupAccess(tt.gid))
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			mode, gid := socketMode(t, path)
			if mode != tt.mode {
				t.Errorf("mode = %v, want %v", mode, tt.mode)
			}
			if tt.gid >= 0 && int(gid) != tt.gid {
				t.Errorf("group = %d, want %d", gid, tt.gid)
			}
		})
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "warrend.sock")
	old, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	old.(*net.UnixListener).SetUnlinkOnClose(false)
	old.Close() // the socket file stays, as after a crash
	if err := os.Chmod(path, 0o777); err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(path, Access{})
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	defer ln.Close()
	if mode, _ := socketMode(t, path); mode != 0o600 {
		t.Errorf("mode = %v, want 0600", mode)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial the new socket: %v", err)
	}
	c.Close()
}

func TestListenRefusesLiveSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "warrend.sock")
	first, err := Listen(path, Access{})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	accepted := make(chan struct{})
	go func() { // ends when first is closed
		defer close(accepted)
		for {
			c, err := first.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	defer func() { first.Close(); <-accepted }()
	ln, err := Listen(path, Access{})
	if err == nil {
		ln.Close()
		t.Fatal("Listen took over a socket another server is using")
	}
	if !strings.Contains(err.Error(), "in use") {
		t.Errorf("error = %v, want it to say the socket is in use", err)
	}
	// The running server's socket is untouched.
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("first server lost its socket: %v", err)
	}
	c.Close()
}

func TestListenRefusesNonSocket(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "precious")
	if err := os.WriteFile(target, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.sock")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "dir.sock")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{target, link, sub} {
		ln, err := Listen(path, Access{})
		if err == nil {
			ln.Close()
			t.Errorf("Listen(%s) replaced a non-socket", filepath.Base(path))
			continue
		}
		if !strings.Contains(err.Error(), "not a socket") {
			t.Errorf("Listen(%s) error = %v, want 'not a socket'", filepath.Base(path), err)
		}
	}
	if b, err := os.ReadFile(target); err != nil || string(b) != "keep me" {
		t.Errorf("file behind the path changed: %q, %v", b, err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("symlink changed: %v", err)
	}
}

func TestListenCreatesDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "warren", "warrend.sock")
	ln, err := Listen(path, Access{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if mode, _ := socketMode(t, path); mode != 0o600 {
		t.Errorf("mode = %v, want 0600", mode)
	}
}

func TestListenErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if ln, err := Listen(filepath.Join(file, "warrend.sock"), Access{}); err == nil {
		ln.Close()
		t.Error("Listen under a regular file succeeded")
	}
	if ln, err := Listen(filepath.Join(dir, "u.sock"), Access{Users: []string{"1000"}}); err == nil {
		ln.Close()
		t.Error("Listen granted a unix socket to a user")
	}
	if ln, err := Listen(filepath.Join(dir, "n.sock"), Access{Group: "wheel"}); err == nil {
		ln.Close()
		t.Error("Listen took a group name for a gid")
	}
	if os.Getuid() != 0 {
		// Only root may give a file to a group it is not in.
		path := filepath.Join(dir, "g.sock")
		if ln, err := Listen(path, groupAccess(0)); err == nil {
			ln.Close()
			t.Error("Listen gave the socket to a foreign group as non-root")
		}
	}
}
