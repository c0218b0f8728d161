package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/warrenmesh/warren/internal/asciicast"
	"github.com/warrenmesh/warren/internal/cli"
	"github.com/warrenmesh/warren/internal/recording"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/version"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// server runs `warren-recorder serve` with args until the test ends and
// returns its base URL.
func server(t *testing.T, args ...string) (base string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...), pw, io.Discard)
		pw.Close()
		done <- err
	}()
	br := bufio.NewReader(pr)
	first, err := br.ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("serve printed nothing: %v (exit: %v)", err, <-done)
	}
	go io.Copy(io.Discard, br)
	_, addr, _ := strings.Cut(strings.TrimSpace(first), "http://")
	base = "http://" + strings.TrimSuffix(addr, "/v1/record")
	stopped := false
	var exit error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			exit = <-done
		}
		return exit
	}
	t.Cleanup(func() { stop() })
	return base, stop
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var meta = recording.Meta{Session: "ssh-00aa", Node: "db1", User: "alice@example.com", LocalUser: "alice", Src: "laptop",
	Started: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)}

func record(t *testing.T, url string, c *http.Client, m recording.Meta) *recording.Stream {
	t.Helper()
	s, err := recording.Start(ctxT(t), c, url+"/v1/record", "", m)
	if err != nil {
		t.Fatal(err)
	}
	w, err := asciicast.NewWriter(s, asciicast.Header{Width: 80, Height: 24}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Output([]byte("$ whoami\r\nalice\r\n")); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestServeThenList(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	base, stop := server(t, "--dir", dir)
	s := record(t, base, http.DefaultClient, meta)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Without --viewer nobody lists over HTTP.
	resp, err := http.Get(base + "/v1/recordings")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET /v1/recordings: %s, want 403", resp.Status)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve after SIGTERM: %v", err)
	}

	var out bytes.Buffer
	if err := run(context.Background(), []string{"list", "--dir", dir, "--json"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var infos []recording.Info
	if err := json.Unmarshal(out.Bytes(), &infos); err != nil {
		t.Fatalf("list --json: %v\n%s", err, out.String())
	}
	if len(infos) != 1 || !infos[0].Complete || infos[0].Meta != meta || infos[0].ID != "ssh-00aa" {
		t.Fatalf("list --json: %+v", infos)
	}
	out.Reset()
	if err := run(context.Background(), []string{"list", "--dir", dir}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ID", "ssh-00aa", "alice@example.com", "complete", filepath.Join(dir, "ssh-00aa.cast")} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("list output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestTrustIdentityHeaders: behind http-identity the uploader's node
// comes from the headers, uploads without them are refused, and only
// listed viewers read recordings.
func TestTrustIdentityHeaders(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	base, _ := server(t, "--dir", dir, "--trust-identity-headers", "--viewer", "auditor@example.com")
	if _, err := recording.Start(ctxT(t), http.DefaultClient, base+"/v1/record", "", meta); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("upload without identity headers: %v, want 403", err)
	}
	proxied := &http.Client{Transport: headers{"Warren-Node": "db2", "Warren-Tags": "tag:server"}}
	s := record(t, base, proxied, meta) // claims db1
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		login string
		code  int
	}{{"", 403}, {"mallory@example.com", 403}, {"auditor@example.com", 200}} {
		c := &http.Client{Transport: headers{"Warren-Node": "x", "Warren-User-Login": tt.login}}
		resp, err := c.Get(base + "/v1/recordings")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.code {
			t.Errorf("GET as %q: %s, want %d", tt.login, resp.Status, tt.code)
			continue
		}
		if tt.code != 200 {
			continue
		}
		var infos []recording.Info
		if err := json.Unmarshal(body, &infos); err != nil || len(infos) != 1 {
			t.Fatalf("GET /v1/recordings: %v %s", err, body)
		}
		if m := infos[0].Meta; m.Node != "db2" || m.Uploader != "db2 (tag:server)" || m.User != meta.User {
			t.Errorf("stored meta %+v, want node db2 verified, user as sent", m)
		}
	}
}

type headers map[string]string

func (h headers) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h {
		r.Header.Set(k, v)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestShutdownCutsUploads: an upload still under way when the grace ends
// is cut, the uploader learns it, and the part received is kept as
// incomplete.
func TestShutdownCutsUploads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	base, stop := server(t, "--dir", dir, "--shutdown-grace", "0s")
	s := record(t, base, http.DefaultClient, meta)
	d, err := recording.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	poll.UntilTrue(t, 10*time.Second, "the recorder has the first event", func() bool {
		in, err := d.Stat("ssh-00aa")
		return err == nil && in.Size > 0
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	<-s.Done()
	if s.Err() == nil {
		t.Error("upload cut by shutdown reports no error")
	}
	s.Close()
	in, err := d.Stat("ssh-00aa")
	if err != nil || in.Complete || in.Size == 0 {
		t.Errorf("after shutdown: %+v %v, want a kept, incomplete recording", in, err)
	}
}

func TestUsageAndExitStatus(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int // 0: success; -1: an error without ExitError (status 1)
	}{
		{[]string{}, 2},
		{[]string{"frobnicate"}, 2},
		{[]string{"serve", "--viewer", "a@b"}, 2},
		{[]string{"serve", "--max-bytes", "0"}, 2},
		{[]string{"list", "extra"}, 2},
		{[]string{"list", "--dir", filepath.Join(t.TempDir(), "missing")}, -1},
		{[]string{"list", "--dir", t.TempDir()}, 0},
		{[]string{"help"}, 0},
	} {
		err := run(context.Background(), tt.args, io.Discard, io.Discard)
		var ee *cli.ExitError
		switch {
		case tt.code == 0 && err != nil, tt.code == -1 && (err == nil || errors.As(err, &ee)):
			t.Errorf("%q: %v", tt.args, err)
		case tt.code > 0 && (!errors.As(err, &ee) || ee.Code != tt.code):
			t.Errorf("%q: %v, want exit status %d", tt.args, err, tt.code)
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &out, io.Discard); err != nil || out.String() != "warren-recorder "+version.String()+"\n" {
		t.Errorf("version: %q %v", out.String(), err)
	}
}
