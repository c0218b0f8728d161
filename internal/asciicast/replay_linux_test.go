package asciicast

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// TestReplayWithAsciinema writes a cast and has the real asciinema
// (Debian's) print it back; asciinema wants a terminal, so it runs on a
// pseudo-terminal.
func TestReplayWithAsciinema(t *testing.T) {
	bin, err := exec.LookPath("asciinema")
	if err != nil {
		t.Skip("asciinema is not installed (Debian: apt-get install asciinema); skipping the replay check")
	}
	path := filepath.Join(t.TempDir(), "session.cast")
	f, err := os.Create(path)
	must(t, err)
	w, err := NewWriter(f, Header{Width: 80, Height: 24, Env: map[string]string{"TERM": "xterm-256color", "SHELL": "/bin/sh"}}, fakeClock(10*time.Millisecond))
	must(t, err)
	must(t, w.Output([]byte("$ echo h\xc3")))
	must(t, w.Output([]byte("\xa9llo\r\n")))
	must(t, w.Resize(120, 40))
	must(t, w.Output([]byte("héllo 😀\r\n")))
	must(t, w.Flush())
	must(t, f.Close())

	out := runOnPTY(t, bin, "cat", path)
	if want := "$ echo héllo\r\nhéllo 😀\r\n"; out != want {
		t.Errorf("asciinema cat printed %q, want %q", out, want)
	}
}

// runOnPTY runs a command with a new pseudo-terminal (in raw mode) as its
// controlling terminal and returns what it printed.
func runOnPTY(t *testing.T, name string, args ...string) string {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	defer ptm.Close()
	must(t, unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0))
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	must(t, err)
	pts, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	must(t, err)
	if _, err := term.MakeRaw(int(pts.Fd())); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	must(t, cmd.Start())
	pts.Close() // the child holds it; the master reads EIO once it exits
	var out bytes.Buffer
	_, err = io.Copy(&out, ptm)
	if err != nil && !errors.Is(err, syscall.EIO) {
		t.Errorf("read terminal: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}
