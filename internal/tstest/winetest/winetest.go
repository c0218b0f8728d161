// Package winetest runs Warren's Windows binaries under Wine in tests: it
// finds Wine, gives each test a private Wine prefix, and lets a Go
// program built for windows/amd64 start on the Wine that Debian ships.
//
// Wine 8 (Debian 12) has no bcryptprimitives.dll, whose ProcessPrng the
// Go runtime loads at startup since Go 1.22 ("fatal error:
// bcryptprimitives.dll not found"), so Prepare writes a stand-in next to
// the executables: a DLL with no code at all, only an export table whose
// ProcessPrng forwards to advapi32's SystemFunction036 (RtlGenRandom,
// which Wine has). A real Windows always has its own and never loads it.
//
// This package is for tests only: it must never be imported by production
// code, never write outside the directories it is given, and never touch
// the user's own Wine prefix (~/.wine).
package winetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Wine is a Wine installation with a private prefix.
type Wine struct {
	// Loader is the program that runs a 64-bit Windows executable.
	Loader string
	// Prefix is the private WINEPREFIX.
	Prefix string
}

// loaders are where Wine's 64-bit loader is found: on PATH, or where
// Debian's wine64 package puts it (without the wine wrapper package).
var loaders = []string{"wine64", "wine", "/usr/lib/wine/wine64"}

// Find returns the Wine on this machine, or skips the test, saying why,
// when there is none. The prefix is a fresh directory under dir.
func Find(t testing.TB, dir string) *Wine {
	t.Helper()
	for _, l := range loaders {
		if p, err := exec.LookPath(l); err == nil {
			return &Wine{Loader: p, Prefix: filepath.Join(dir, "wineprefix")}
		}
	}
	t.Skipf("skipping: Wine is not installed (apt-get install wine64; looked for %s)", strings.Join(loaders, ", "))
	return nil
}

// Command returns a command that runs the Windows executable exe under
// Wine with Wine's own chatter silenced. The caller starts it.
func (w *Wine) Command(ctx context.Context, exe string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, w.Loader, append([]string{exe}, args...)...)
	cmd.Env = w.env()
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Init starts the prefix's wineserver, persistent until Shutdown (so no
// program's output pipe is inherited by a server that outlives it), and
// creates the prefix (wineboot) so the first real program does not pay
// for it, within timeout.
func (w *Wine) Init(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	server, err := w.server()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(w.Prefix, 0o700); err != nil {
		return err
	}
	srv := exec.CommandContext(ctx, server, "-p")
	srv.Env = w.env()
	// No pipes: the server it forks would hold them open for good.
	if err := srv.Run(); err != nil { // it daemonizes at once
		return fmt.Errorf("wineserver -p: %w", err)
	}
	log, err := os.CreateTemp(filepath.Dir(w.Prefix), "wineboot-*.log")
	if err != nil {
		return err
	}
	defer log.Close()
	boot := w.Command(ctx, "wineboot", "--init")
	boot.Stdout, boot.Stderr = log, log
	if err := boot.Run(); err != nil {
		out, _ := os.ReadFile(log.Name())
		return fmt.Errorf("wineboot --init: %w\n%s", err, out)
	}
	return nil
}

// Shutdown stops the prefix's wineserver and every program still
// running in it (wineserver -k), so a test leaves nothing behind.
func (w *Wine) Shutdown() error {
	server, err := w.server()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, server, "-k")
	cmd.Env = w.env()
	_ = cmd.Run() // exits 1 when no server runs
	return nil
}

// server is the wineserver next to the loader, or on PATH.
func (w *Wine) server() (string, error) {
	server := filepath.Join(filepath.Dir(w.Loader), "wineserver")
	if _, err := os.Stat(server); err == nil {
		return server, nil
	}
	if p, err := exec.LookPath("wineserver"); err == nil {
		return p, nil
	}
	return "", errors.New("winetest: no wineserver next to " + w.Loader + " or on PATH")
}

func (w *Wine) env() []string {
	return append(os.Environ(), "WINEPREFIX="+w.Prefix, "WINEDEBUG=-all", "WINEDLLOVERRIDES=mscoree,mshtml=")
}

// Prepare readies the prefix (after Init) to run Go programs: it writes
// the bcryptprimitives.dll stand-in into its system32, unless Wine has
// one of its own. The Go runtime loads the DLL from system32 only.
func (w *Wine) Prepare() error {
	dir := filepath.Join(w.Prefix, "drive_c", "windows", "system32")
	path := filepath.Join(dir, "bcryptprimitives.dll")
	if _, err := os.Stat(path); err == nil {
		return nil // a Wine that has it
	}
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("winetest: prefix not initialised: %w", err)
	}
	return os.WriteFile(path, ForwarderDLL("bcryptprimitives.dll", map[string]string{
		"ProcessPrng": "advapi32.SystemFunction036",
	}), 0o644)
}
