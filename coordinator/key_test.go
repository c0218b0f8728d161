package coordinator

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/coordinator/store"
)

// TestRefusesAccessibleKey is the regression test for the coordinator
// starting with a group- or world-readable coordinator.key: it must refuse,
// saying to run chmod 600, as warrend refuses a readable state file. The
// same goes for secrets.key, the key ring sealing secrets in the database.
func TestRefusesAccessibleKey(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no permission bits on Windows")
	}
	for _, file := range []string{"coordinator.key", SecretsKeyFile} {
		for _, mode := range []os.FileMode{0o640, 0o644, 0o604} {
			dir := t.TempDir()
			// A first start creates both files, owner-only.
			c, err := New(context.Background(), Config{StateDir: dir, Relay: RelayConfig{Disable: true}})
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			path := filepath.Join(dir, file)
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("%s after first start: %v, %v", file, fi, err)
			}
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			c, err = New(context.Background(), Config{StateDir: dir, Relay: RelayConfig{Disable: true}})
			if err == nil {
				c.Close()
				t.Fatalf("%s mode %04o: coordinator started", file, mode)
			}
			if !strings.Contains(err.Error(), "chmod 600") {
				t.Fatalf("%s mode %04o: %v; want a hint to chmod 600", file, mode, err)
			}
		}
	}
}

// TestLostSecretsKey: a database holding secrets sealed with keys the
// ring lacks (secrets.key lost, a new one made) stops the start, saying
// to restore the file, rather than running without the users' secrets.
func TestLostSecretsKey(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	cfg := Config{StateDir: dir, Relay: RelayConfig{Disable: true}}
	c, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.store.CreateUser(ctx, store.User{Name: "ann", Role: store.RoleMember, TOTPSecret: "JBSWY3DPEHPK3PXP"}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := os.Remove(filepath.Join(dir, SecretsKeyFile)); err != nil {
		t.Fatal(err)
	}
	c, err = New(ctx, cfg)
	if err == nil {
		c.Close()
		t.Fatal("started without the key that sealed the stored secrets")
	}
	if !strings.Contains(err.Error(), "restore "+SecretsKeyFile) {
		t.Fatalf("%v; want a hint to restore %s", err, SecretsKeyFile)
	}
}
