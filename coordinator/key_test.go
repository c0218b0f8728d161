package coordinator

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/internal/key"
)

// TestRefusesAccessibleKey is the regression test for the coordinator
// starting with a group- or world-readable coordinator.key: it must refuse,
// saying to run chmod 600, as warrend refuses a readable state file.
func TestRefusesAccessibleKey(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no permission bits on Windows")
	}
	for _, mode := range []os.FileMode{0o640, 0o644, 0o604} {
		dir := t.TempDir()
		text, _ := key.NewControl().MarshalText()
		path := filepath.Join(dir, "coordinator.key")
		if err := os.WriteFile(path, append(text, '\n'), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		c, err := New(context.Background(), Config{StateDir: dir, Relay: RelayConfig{Disable: true}})
		if err == nil {
			c.Close()
			t.Fatalf("mode %04o: coordinator started", mode)
		}
		if !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("mode %04o: %v; want a hint to chmod 600", mode, err)
		}
	}
}
