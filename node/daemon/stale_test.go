package daemon_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/warrenmesh/warren/node/daemon"
)

// TestStartRemovesStaleTempFiles: a warrend killed (kill -9) in the middle
// of an atomic write leaves NAME.tmpDIGITS files in its state directory;
// the next start removes those of its own files and nothing else.
func TestStartRemovesStaleTempFiles(t *testing.T) {
	dir := t.TempDir()
	stale := []string{"netmap.json.tmp1234567890", "warrend.state.tmp42"}
	kept := []string{
		"netmap.json.tmp",      // no digits: not a name atomicfile makes
		"netmap.json.tmpx1",    // ditto
		"notes.tmp123",         // another program's file
		"netmap.json.tmp1.bak", // ditto
	}
	for _, name := range append(slices.Clone(stale), kept...) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "netmap.json.tmp77"), 0o700); err != nil { // a directory: kept
		t.Fatal(err)
	}
	kept = append(kept, "netmap.json.tmp77")

	d, err := daemon.New(daemon.Config{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, name := range stale {
		if _, err := os.Lstat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("stale %s still there (%v)", name, err)
		}
	}
	for _, name := range kept {
		if _, err := os.Lstat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s was removed: %v", name, err)
		}
	}
}
