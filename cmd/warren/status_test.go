package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/testmesh"
	"github.com/warrenmesh/warren/node/localapi"
)

// serveDaemon serves d's local API on a unix socket in a temporary
// directory until the test ends, and returns the socket's path.
func serveDaemon(t *testing.T, d localapi.Backend) string {
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

// TestStatusWhileWaitingForSignIn: "warren status" on a node that waits
// for its user to sign in (every interactive join) shows that state and
// the sign-in URL; it used to dereference the missing self node and
// panic.
func TestStatusWhileWaitingForSignIn(t *testing.T) {
	m := testmesh.New(t, testmesh.Options{LocalLogin: true})
	d := m.AddDaemon("laptop")
	sock := serveDaemon(t, d.Daemon)

	// "warren up" without a key prints the sign-in URL and waits; nobody
	// signs in, and the command is interrupted (as --timeout or ^C would)
	// once the URL is printed, while the node keeps waiting.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	progress := &urlWatch{printed: cancel}
	err := run(ctx, []string{"--socket", sock, "up", "--coordinator", m.URL}, strings.NewReader(""), io.Discard, progress)
	url := progress.url()
	if err == nil || url == "" {
		t.Fatalf("up without a key: %q, %v; want a sign-in URL and an interrupted wait", progress.buf.String(), err)
	}

	out, _, err := warren(t, "--socket", sock, "status", "--json")
	var st localapi.Status
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.State != localapi.StateNeedsLogin || st.AuthURL != url {
		t.Fatalf("status --json: %q, %v; want state %s and the sign-in URL %s", out, err, localapi.StateNeedsLogin, url)
	}
	out, _, err = warren(t, "--socket", sock, "status")
	if err != nil || !strings.Contains(out, "sign in") || !strings.Contains(out, url) {
		t.Fatalf("status while waiting for a sign-in: %q, %v; want the state and the sign-in URL %s", out, err, url)
	}
}

// urlWatch collects "warren up" progress and calls printed once the
// sign-in URL is in it.
type urlWatch struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	printed func()
}

const signInPrefix = "sign in at: "

func (w *urlWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.urlLocked() != "" {
		w.printed()
	}
	return len(p), nil
}

func (w *urlWatch) url() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.urlLocked()
}

func (w *urlWatch) urlLocked() string {
	_, after, ok := strings.Cut(w.buf.String(), signInPrefix)
	if !ok {
		return ""
	}
	u, _, complete := strings.Cut(after, "\n")
	if !complete {
		return ""
	}
	return u
}
