package main

// Helpers of TestSSHEndToEnd: the coordinator's admin socket, a daemon's
// local API, a loopback HTTP service, casts, and a user's processes.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/internal/asciicast"
	"github.com/warrenmesh/warren/node/localapi"
)

// processesOf counts the processes running as uid (from /proc).
func processesOf(t *testing.T, uid string) int {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range dirs {
		if d.Name()[0] < '0' || d.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "status"))
		if err != nil {
			continue // it ended meanwhile
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "Uid:" && f[1] == uid {
				n++
			}
		}
	}
	return n
}

// castOutput parses an asciinema cast v2 and returns its output events'
// text.
func castOutput(cast []byte) (string, error) {
	h, events, err := asciicast.Parse(bytes.NewReader(cast))
	if err != nil {
		return "", err
	}
	if h.Version != 2 {
		return "", fmt.Errorf("cast version %d", h.Version)
	}
	var out strings.Builder
	for _, e := range events {
		if e.Type == "o" {
			out.WriteString(e.Data)
		}
	}
	return out.String(), nil
}

// serveAdminSocket serves c's admin API on <dir>/admin.sock until the
// test ends, for the CLI's --state-dir.
func serveAdminSocket(t *testing.T, c *coordinator.Coordinator, dir string) {
	t.Helper()
	ln, err := coordinator.ListenAdminSocket(filepath.Join(dir, "admin.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.ServeAdmin(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// serveLocalAPI serves d's local API on a socket until the test ends and
// returns its path.
func serveLocalAPI(t *testing.T, d localapi.Backend) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "warrend.sock")
	ln, err := localapi.Listen(sock, localapi.Access{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := localapi.NewServer(localapi.Config{Backend: d})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("local API: %v", err)
		}
	})
	return sock
}

// serveHTTP serves h on a loopback port until the test ends and returns
// the address.
func serveHTTP(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return ln.Addr().String()
}
