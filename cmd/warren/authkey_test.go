package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/node/localapi"
)

// upRecorder is a local API backend that records what up asked for; the
// CLI under test talks to it over the real socket and protocol. (The
// whole path to a real coordinator is TestCLIAgainstRealDaemons.)
type upRecorder struct {
	localapi.Backend // nil: only Up and Status are called
	got              chan localapi.UpRequest
}

func (r *upRecorder) Up(_ context.Context, req localapi.UpRequest, _ func(string)) (localapi.Status, error) {
	r.got <- req
	return r.Status(context.Background()), nil
}

func (r *upRecorder) Status(context.Context) localapi.Status {
	return localapi.Status{State: localapi.StateRunning, Self: &localapi.PeerStatus{Name: "laptop"}}
}

func serveRecorder(t *testing.T) (string, *upRecorder) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "warrend.sock")
	ln, err := localapi.Listen(sock, -1)
	if err != nil {
		t.Fatal(err)
	}
	rec := &upRecorder{got: make(chan localapi.UpRequest, 1)}
	srv, err := localapi.NewServer(localapi.Config{Backend: rec, Group: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return sock, rec
}

// TestUpAuthKeySources: the pre-auth key can come from a file or stdin,
// so it does not show in ps; --auth-key KEY still works.
func TestUpAuthKeySources(t *testing.T) {
	const key = "wpk_0123456789abcdef"
	dir := t.TempDir()
	file := filepath.Join(dir, "key")
	if err := os.WriteFile(file, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	twoLines := filepath.Join(dir, "two")
	if err := os.WriteFile(twoLines, []byte(key+"\nsecond\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("k"), 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		stdin   string
		wantErr string // empty: up must send key
	}{
		{"flag", []string{"--auth-key", key}, "", ""},
		{"file", []string{"--auth-key-file", file}, "", ""},
		{"file with =", []string{"--auth-key-file=" + file}, "", ""},
		{"file from stdin", []string{"--auth-key-file", "-"}, key + "\n", ""},
		{"flag from stdin", []string{"--auth-key", "-"}, key + "\r\n", ""},
		{"stdin without newline", []string{"--auth-key", "-"}, key, ""},
		{"both", []string{"--auth-key", key, "--auth-key-file", file}, "", "not both"},
		{"missing file", []string{"--auth-key-file", filepath.Join(dir, "missing")}, "", "no such file"},
		{"empty file", []string{"--auth-key-file", empty}, "", "is empty"},
		{"empty stdin", []string{"--auth-key", "-"}, "", "is empty"},
		{"two lines", []string{"--auth-key-file", twoLines}, "", "one line"},
		{"huge file", []string{"--auth-key-file", big}, "", "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock, rec := serveRecorder(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var out, errOut bytes.Buffer
			args := append([]string{"--socket", sock, "up", "--coordinator", "http://127.0.0.1:1"}, tt.args...)
			err := run(ctx, args, strings.NewReader(tt.stdin), &out, &errOut)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("warren %q: %v, want an error containing %q", tt.args, err, tt.wantErr)
				}
				select {
				case req := <-rec.got:
					t.Fatalf("up was sent despite the error: %+v", req)
				default:
				}
				return
			}
			if err != nil {
				t.Fatalf("warren %q: %v (%s)", tt.args, err, errOut.String())
			}
			if req := <-rec.got; req.AuthKey != key {
				t.Fatalf("up sent auth key %q, want %q", req.AuthKey, key)
			}
		})
	}
}

// TestUpHelpWarnsAboutPS: the help says --auth-key KEY is visible to other
// local users and names the alternatives.
func TestUpHelpWarnsAboutPS(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"up", "--help"}, strings.NewReader(""), &out, &errOut)
	if err == nil {
		t.Log("up --help returned no error")
	}
	help := errOut.String()
	for _, want := range []string{"--auth-key-file", "visible to other local users"} {
		if !strings.Contains(help, want) {
			t.Errorf("warren up --help does not mention %q:\n%s", want, help)
		}
	}
	var usage bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, strings.NewReader(""), &usage, &errOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(usage.String(), "--auth-key-file") {
		t.Errorf("warren --help does not mention --auth-key-file:\n%s", usage.String())
	}
}

// FuzzReadKeyFrom: whatever a key file holds, readKeyFrom returns one
// non-empty line without surrounding space, or an error.
func FuzzReadKeyFrom(f *testing.F) {
	f.Add("wpk_0123456789abcdef\n")
	f.Add("\r\n")
	f.Add("a\nb")
	f.Add(" \t wpk_x \r\n")
	f.Fuzz(func(t *testing.T, in string) {
		key, err := readKeyFrom("fuzz", strings.NewReader(in))
		if err != nil {
			if key != "" {
				t.Fatalf("error %v with key %q", err, key)
			}
			return
		}
		if key == "" || strings.ContainsAny(key, "\r\n") || strings.TrimSpace(key) != key || len(key) > maxAuthKeyFile {
			t.Fatalf("readKeyFrom(%q) = %q", in, key)
		}
	})
}
