//go:build !windows

package localapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const helperEnv = "LOCALAPI_TEST_HELPER_SOCKET"

// TestHelperProcess is not a test: the credential tests run the test
// binary as another user, and this is what it does then. It calls Status
// and Dial on the socket and prints the outcome.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("helper for the credential tests")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := NewClient(path)
	defer c.Close()
	if _, err := c.Status(ctx); err != nil {
		fmt.Printf("status: %v\n", err)
	} else {
		fmt.Println("status: ok")
	}
	if conn, err := c.Dial(ctx, "web:80"); err != nil {
		fmt.Printf("dial: %v\n", err)
	} else {
		conn.Close()
		fmt.Println("dial: ok")
	}
	os.Exit(0)
}

// runAs runs the test binary's helper as uid/gid with the supplementary
// groups given, against the socket at path, and returns its output.
func runAs(t *testing.T, bin, path string, uid, gid uint32, groups []uint32) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-test.run=^TestHelperProcess$", "-test.count=1")
	// GORACE: a race-enabled helper otherwise sleeps 1s at exit.
	cmd.Env = append(os.Environ(), helperEnv+"="+path, "GORACE=atexit_sleep_ms=0")
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: groups}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper as uid %d: %v\n%s", uid, err, out)
	}
	return string(out)
}

// copyTestBinary copies the running test binary into dir, readable and
// executable by everyone (the build cache is private to root).
func copyTestBinary(t *testing.T, dir string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	bin := filepath.Join(dir, "localapi.test")
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestPeerCredentials connects as other users and checks the socket's
// mode and the server's SO_PEERCRED check each let in exactly who they
// should.
func TestPeerCredentials(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a helper process as another user (uid 65534)")
	}
	const (
		nobody = 65534
		group  = 65533 // the socket group; nobody is not in it
	)
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := copyTestBinary(t, dir)

	const (
		ok        = "status: ok\ndial: ok\n"
		fsRefused = "no permission to use"
		refused   = "permission denied: only root"
	)
	tests := []struct {
		name      string
		listenGID int         // the socket's group, -1 for none
		chmod     os.FileMode // if set, loosen the socket's mode (a misconfiguration)
		cfgGroup  int
		gid       uint32
		groups    []uint32
		want      string
	}{
		{"other user, socket 0600", -1, 0, -1, nobody, nil, fsRefused},
		{"other user, socket 0666", -1, 0o666, -1, nobody, nil, refused},
		{"other user, socket 0666, not in group", -1, 0o666, group, nobody, nil, refused},
		{"not in group, socket 0660", group, 0, group, nobody, nil, fsRefused},
		{"primary group", group, 0, group, group, nil, ok},
		{"supplementary group", group, 0, group, nobody, []uint32{nobody, group}, ok},
		{"supplementary group, socket 0666", -1, 0o666, group, nobody, []uint32{group}, ok},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("s%d.sock", i))
			ln, err := Listen(path, groupAccess(tt.listenGID))
			if err != nil {
				t.Fatal(err)
			}
			if tt.chmod != 0 {
				if err := os.Chmod(path, tt.chmod); err != nil {
					ln.Close()
					t.Fatal(err)
				}
			}
			b := newFakeBackend()
			ts := serveOn(t, b, Config{Access: groupAccess(tt.cfgGroup)}, ln, path)
			out := runAs(t, bin, path, nobody, tt.gid, tt.groups)
			if tt.want == ok {
				if out != ok {
					t.Errorf("helper output:\n%s\nwant:\n%s", out, ok)
				}
				return
			}
			if strings.Count(out, tt.want) != 2 {
				t.Errorf("helper output:\n%s\nwant both calls refused with %q", out, tt.want)
			}
			if calls := b.Calls(); len(calls) != 0 {
				t.Errorf("refused caller reached the backend: %q", calls)
			}
			// The owner still gets in.
			if _, err := ts.client.Status(testCtx(t)); err != nil {
				t.Errorf("owner refused: %v", err)
			}
		})
	}
}

// TestNoCredentialsRefused checks a request without peer credentials
// (not over a unix socket) is refused before it reaches the backend.
func TestNoCredentialsRefused(t *testing.T) {
	b := newFakeBackend()
	s, err := NewServer(Config{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"/v0/status", "/v0/nope"} {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
		if w.Code != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", target, w.Code)
		}
		if msg := apiErrorOf(t, w.Body.Bytes()); !strings.Contains(msg, "permission denied") {
			t.Errorf("%s: error %q", target, msg)
		}
	}
	if calls := b.Calls(); len(calls) != 0 {
		t.Errorf("backend reached without credentials: %q", calls)
	}
}

// groupAccess grants group gid access, or no group for -1.
func groupAccess(gid int) Access {
	if gid < 0 {
		return Access{}
	}
	return Access{Group: strconv.Itoa(gid)}
}
