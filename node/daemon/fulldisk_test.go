//go:build linux

package daemon_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/warrenmesh/warren/node/daemon"
	"github.com/warrenmesh/warren/node/localapi"
)

// smallDisk mounts a 256 KiB tmpfs on a new directory and returns it. It
// skips the test unless it runs as root where mounts are allowed (CI does).
func smallDisk(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("simulating a full disk needs a tmpfs mount: run as root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=256k,mode=0700"); err != nil {
		t.Skipf("simulating a full disk needs a tmpfs mount: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes to a file in dir until the file system is full (bounded by
// count, so a file system that never fills fails the test instead of
// spinning), and returns the file's path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for range 1024 { // 4 MiB, far beyond the 256 KiB disk
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill: %v", err)
			}
			return path
		}
	}
	t.Fatal("the disk never filled")
	return ""
}

// TestDownOnFullDisk: `warren down` with a full state directory still
// disconnects, and says that saving failed (and what that means) instead
// of failing while staying connected.
func TestDownOnFullDisk(t *testing.T) {
	m, k := meshWithKey(t)
	dir := smallDisk(t)
	n := startNode(t, dir, daemon.Config{})
	up(t, n, m, "laptop", k)
	waitPeers(t, n, 0)
	filler := fill(t, dir)
	ctx := context.Background()

	_, err := n.api.Down(ctx)
	if err == nil {
		t.Fatal("down on a full disk reported no error")
	}
	for _, want := range []string{"disconnected", "no space left"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("down error %q does not mention %q", err, want)
		}
	}
	if st, serr := n.api.Status(ctx); serr != nil || st.State != localapi.StateStopped {
		t.Fatalf("after down on a full disk: state %q (%v), want %q", st.State, serr, localapi.StateStopped)
	}
	if _, err := n.api.Dial(ctx, "laptop:80"); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("dial after down on a full disk: %v", err)
	}

	// With space again, down saves, and a restart stays down.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if _, err := n.api.Down(ctx); err != nil {
		t.Fatalf("down with space again: %v", err)
	}
	n.stop()
	again := startNode(t, dir, daemon.Config{})
	if st, err := again.api.Status(ctx); err != nil || st.State != localapi.StateStopped {
		t.Fatalf("after a restart: state %q (%v), want %q", st.State, err, localapi.StateStopped)
	}
}
