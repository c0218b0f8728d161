// Package buildtest builds Warren's commands for tests that run them as
// real processes, and finds free loopback ports for them.
package buildtest

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Build compiles the named commands (directories under cmd/) into a
// temporary directory and returns it.
func Build(t testing.TB, cmds ...string) string {
	t.Helper()
	return BuildFor(t, "", "", cmds...)
}

// BuildFor is Build for another OS and CPU (GOOS and GOARCH; "" for this
// machine's).
func BuildFor(t testing.TB, goos, goarch string, cmds ...string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	dir := t.TempDir()
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, c := range cmds {
		args = append(args, "./cmd/"+c)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if goos != "" || goarch != "" {
		cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", cmds, err, out)
	}
	return dir
}

// FreePort returns a loopback address with a port that was free a moment
// ago.
func FreePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
