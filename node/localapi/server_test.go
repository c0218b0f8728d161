//go:build !windows

package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testCtx bounds a test's calls so a hang fails instead of stalling.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// rawDo sends one request over the socket and returns the response and
// its body, for checking status codes the Client folds into errors.
func rawDo(t *testing.T, path, method, target string, body io.Reader, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(testCtx(t), method, "http://warrend"+target, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, target, err)
	}
	return resp, b
}

// apiErrorOf decodes a JSON error body.
func apiErrorOf(t *testing.T, b []byte) string {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(b, &e); err != nil || e.Error == "" {
		t.Fatalf("body %q is not a JSON API error", b)
	}
	return e.Error
}

func TestNewServerNeedsBackend(t *testing.T) {
	if _, err := NewServer(Config{}); err == nil {
		t.Fatal("NewServer without a Backend succeeded")
	}
}

func TestStatus(t *testing.T) {
	b := newFakeBackend()
	b.status.Coordinator = "https://coord.example"
	b.status.Peers = []PeerStatus{{ID: 2, Name: "web", Addresses: []netip.Prefix{netip.MustParsePrefix("100.64.0.2/32")}, Online: true}}
	ts := startServer(t, b, Config{})
	got, err := ts.client.Status(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, b.status) {
		t.Errorf("Status = %+v, want %+v", got, b.status)
	}
	if c := b.Calls(); !slices.Equal(c, []string{"Status"}) {
		t.Errorf("backend calls = %q", c)
	}
}

func TestUpStreamsProgress(t *testing.T) {
	b := newFakeBackend()
	b.upGate = make(chan struct{})
	ts := startServer(t, b, Config{})
	req := UpRequest{Coordinator: "https://coord.example", AuthKey: "wkey-1", Hostname: "laptop", Tags: []string{"tag:dev"}}
	var steps []string
	st, err := ts.client.Up(testCtx(t), req, func(s string) {
		steps = append(steps, s)
		if len(steps) == len(b.upSteps) {
			// Up is still blocked: the steps reached us as they happened.
			close(b.upGate)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(st, b.status) {
		t.Errorf("Up status = %+v, want %+v", st, b.status)
	}
	if !slices.Equal(steps, b.upSteps) {
		t.Errorf("progress = %q, want %q", steps, b.upSteps)
	}
	if ups, _, _ := b.requests(); len(ups) != 1 || !reflect.DeepEqual(ups[0], req) {
		t.Errorf("backend got %+v, want [%+v]", ups, req)
	}
}

func TestUpWireFormat(t *testing.T) {
	b := newFakeBackend()
	b.upErr = errors.New("coordinator refused the auth key: ask an admin for a new one")
	ts := startServer(t, b, Config{})
	resp, body := rawDo(t, ts.path, http.MethodPost, "/v0/up", strings.NewReader(`{"authKey":"k"}`), nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	want := `{"progress":"fetching key"}` + "\n" + `{"progress":"registering"}` + "\n" + `{"error":"` + b.upErr.Error() + `"}` + "\n"
	if string(body) != want {
		t.Errorf("body:\n%s\nwant:\n%s", body, want)
	}

	// The Client turns the error line into its error, after the progress.
	var steps []string
	_, err := ts.client.Up(testCtx(t), UpRequest{}, func(s string) { steps = append(steps, s) })
	if err == nil || err.Error() != b.upErr.Error() {
		t.Errorf("Up error = %v, want %q", err, b.upErr)
	}
	if len(steps) != 2 {
		t.Errorf("progress before the error = %q", steps)
	}
	if _, err := ts.client.Up(testCtx(t), UpRequest{}, nil); err == nil {
		t.Error("Up with nil progress: no error")
	}
}

func TestDownLogoutPingNetcheckResolve(t *testing.T) {
	b := newFakeBackend()
	ts := startServer(t, b, Config{})
	ctx, c := testCtx(t), ts.client

	if st, err := c.Down(ctx); err != nil || !reflect.DeepEqual(st, b.status) {
		t.Errorf("Down = %+v, %v", st, err)
	}
	if st, err := c.Logout(ctx); err != nil || !reflect.DeepEqual(st, b.status) {
		t.Errorf("Logout = %+v, %v", st, err)
	}
	preq := PingRequest{Peer: "web", Count: 5, TCPPort: 22}
	if rep, err := c.Ping(ctx, preq); err != nil || !reflect.DeepEqual(rep, b.ping) {
		t.Errorf("Ping = %+v, %v; want %+v", rep, err, b.ping)
	}
	if _, pings, _ := b.requests(); len(pings) != 1 || pings[0] != preq {
		t.Errorf("backend pings = %+v", pings)
	}
	if rep, err := c.Netcheck(ctx); err != nil || !reflect.DeepEqual(rep, b.netcheck) {
		t.Errorf("Netcheck = %+v, %v", rep, err)
	}
	if a, err := c.Resolve(ctx, "web"); err != nil || a != b.addrs["web"] {
		t.Errorf("Resolve(web) = %v, %v", a, err)
	}
	// Names are query-escaped on the way.
	b.addrs["odd name&x=1"] = netip.MustParseAddr("100.64.0.9")
	if a, err := c.Resolve(ctx, "odd name&x=1"); err != nil || a != b.addrs["odd name&x=1"] {
		t.Errorf("Resolve(odd name) = %v, %v", a, err)
	}
	if rep, err := c.Posture(ctx); err != nil || !rep.Reporting || len(rep.Attrs) != 1 || rep.Attrs[0].Name != "node:os" || !rep.Attrs[0].CollectedAt.Equal(time.Unix(1, 0)) {
		t.Errorf("Posture = %+v, %v", rep, err)
	}
	want := []string{"Down", "Status", "Logout", "Status", "Ping", "Netcheck", "Resolve web", "Resolve odd name&x=1", "Posture"}
	if got := b.Calls(); !slices.Equal(got, want) {
		t.Errorf("backend calls = %q, want %q", got, want)
	}
}

// TestBackendErrors checks each failing backend call becomes a status code
// and the backend's message, which the Client returns as its error.
func TestBackendErrors(t *testing.T) {
	msg := "something broke: check warrend's log"
	tests := []struct {
		name   string
		set    func(*fakeBackend, error)
		method string
		target string
		body   string
		code   int
		call   func(context.Context, *Client) error
	}{
		{"down", func(b *fakeBackend, e error) { b.downErr = e }, "POST", "/v0/down", "", http.StatusInternalServerError,
			func(ctx context.Context, c *Client) error { _, err := c.Down(ctx); return err }},
		{"logout", func(b *fakeBackend, e error) { b.logoutErr = e }, "POST", "/v0/logout", "", http.StatusInternalServerError,
			func(ctx context.Context, c *Client) error { _, err := c.Logout(ctx); return err }},
		{"ping", func(b *fakeBackend, e error) { b.pingErr = e }, "POST", "/v0/ping", `{"peer":"web"}`, http.StatusBadRequest,
			func(ctx context.Context, c *Client) error {
				_, err := c.Ping(ctx, PingRequest{Peer: "web"})
				return err
			}},
		{"netcheck", func(b *fakeBackend, e error) { b.netcheckErr = e }, "GET", "/v0/netcheck", "", http.StatusInternalServerError,
			func(ctx context.Context, c *Client) error { _, err := c.Netcheck(ctx); return err }},
		{"resolve", func(b *fakeBackend, e error) { b.resolveErr = e }, "GET", "/v0/resolve?name=web", "", http.StatusNotFound,
			func(ctx context.Context, c *Client) error { _, err := c.Resolve(ctx, "web"); return err }},
		{"dial", func(b *fakeBackend, e error) { b.dialErr = e }, "POST", "/v0/dial?addr=web:80", "", http.StatusBadGateway,
			func(ctx context.Context, c *Client) error {
				conn, err := c.Dial(ctx, "web:80")
				if err == nil {
					conn.Close()
				}
				return err
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newFakeBackend()
			tt.set(b, errors.New(msg))
			ts := startServer(t, b, Config{})
			hdr := http.Header{"Connection": {"Upgrade"}, "Upgrade": {dialUpgrade}}
			resp, body := rawDo(t, ts.path, tt.method, tt.target, strings.NewReader(tt.body), hdr)
			if resp.StatusCode != tt.code {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.code)
			}
			if got := apiErrorOf(t, body); got != msg {
				t.Errorf("error body = %q, want %q", got, msg)
			}
			if err := tt.call(testCtx(t), ts.client); err == nil || err.Error() != msg {
				t.Errorf("client error = %v, want %q", err, msg)
			}
		})
	}
}

func TestRouting(t *testing.T) {
	tests := []struct {
		method, target string
		code           int
	}{
		{"GET", "/", http.StatusNotFound},
		{"GET", "/v0/nope", http.StatusNotFound},
		{"GET", "/v1/status", http.StatusNotFound},
		{"GET", "/v0/status/extra", http.StatusNotFound},
		{"POST", "/v0/status", http.StatusMethodNotAllowed},
		{"GET", "/v0/up", http.StatusMethodNotAllowed},
		{"GET", "/v0/down", http.StatusMethodNotAllowed},
		{"DELETE", "/v0/logout", http.StatusMethodNotAllowed},
		{"GET", "/v0/ping", http.StatusMethodNotAllowed},
		{"POST", "/v0/netcheck", http.StatusMethodNotAllowed},
		{"PUT", "/v0/resolve", http.StatusMethodNotAllowed},
		{"GET", "/v0/dial", http.StatusMethodNotAllowed},
		{"HEAD", "/v0/status", http.StatusOK},
	}
	b := newFakeBackend()
	ts := startServer(t, b, Config{})
	for _, tt := range tests {
		resp, _ := rawDo(t, ts.path, tt.method, tt.target, nil, nil)
		if resp.StatusCode != tt.code {
			t.Errorf("%s %s = %d, want %d", tt.method, tt.target, resp.StatusCode, tt.code)
		}
		if tt.code == http.StatusMethodNotAllowed && resp.Header.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", tt.method, tt.target)
		}
	}
	if got := b.Calls(); !slices.Equal(got, []string{"Status"}) { // the HEAD
		t.Errorf("misrouted requests reached the backend: %q", got)
	}
}

func TestDialBadRequests(t *testing.T) {
	b := newFakeBackend()
	ts := startServer(t, b, Config{})
	upgrade := http.Header{"Connection": {"Upgrade"}, "Upgrade": {dialUpgrade}}
	tests := []struct {
		name   string
		target string
		hdr    http.Header
		want   string
	}{
		{"no upgrade", "/v0/dial?addr=web:80", nil, "Upgrade"},
		{"wrong upgrade", "/v0/dial?addr=web:80", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}}, "Upgrade"},
		{"udp", "/v0/dial?network=udp&addr=web:53", upgrade, "only tcp"},
		{"unix", "/v0/dial?network=unix&addr=/etc/passwd", upgrade, "only tcp"},
	}
	for _, tt := range tests {
		resp, body := rawDo(t, ts.path, http.MethodPost, tt.target, nil, tt.hdr)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", tt.name, resp.StatusCode)
		}
		if msg := apiErrorOf(t, body); !strings.Contains(msg, tt.want) {
			t.Errorf("%s: error %q does not mention %q", tt.name, msg, tt.want)
		}
	}
	if got := b.Calls(); len(got) != 0 {
		t.Errorf("bad dials reached the backend: %q", got)
	}
}

// TestDialStream checks a dial carries data both ways and passes each
// half-close through while the other direction stays open.
func TestDialStream(t *testing.T) {
	b := newFakeBackend()
	ts := startServer(t, b, Config{})
	ctx := testCtx(t)
	conn, err := ts.client.Dial(ctx, "web:80")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	far := <-b.dialed
	defer far.Close()
	if _, _, dials := b.requests(); len(dials) != 1 || dials[0] != "tcp web:80" {
		t.Fatalf("backend dials = %q", dials)
	}
	deadline := time.Now().Add(20 * time.Second)
	conn.SetDeadline(deadline)
	far.SetDeadline(deadline)

	// Client to upstream, then the client's half-close reaches upstream.
	if _, err := conn.Write([]byte("GET / HTTP/1.0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := conn.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(far)
	if err != nil || string(got) != "GET / HTTP/1.0\r\n\r\n" {
		t.Fatalf("upstream read %q, %v", got, err)
	}

	// Upstream still answers after the client's half-close.
	big := strings.Repeat("0123456789abcdef", 64<<10) // 1 MiB, beyond any buffer
	go func() {                                       // ends when the write finishes or far is closed
		_, _ = far.Write([]byte(big))
		far.(*net.UnixConn).CloseWrite()
	}()
	got, err = io.ReadAll(conn)
	if err != nil || string(got) != big {
		t.Fatalf("client read %d bytes, %v; want %d", len(got), err, len(big))
	}
}

// TestDialEndsWithServe checks a dial stream left open does not outlive
// Serve: the client sees the stream end and no goroutine is left.
func TestDialEndsWithServe(t *testing.T) {
	b := newFakeBackend()
	ts := startServer(t, b, Config{})
	conn, err := ts.client.Dial(testCtx(t), "web:80")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	far := <-b.dialed
	defer far.Close()
	ts.stop(t)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read after Serve returned: %v, want EOF", err)
	}
}

func TestDialContextCancelled(t *testing.T) {
	b := newFakeBackend()
	ts := startServer(t, b, Config{})
	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	if conn, err := ts.client.Dial(ctx, "web:80"); err == nil {
		conn.Close()
		t.Fatal("Dial with a cancelled context succeeded")
	}
}

func TestClientNoDaemon(t *testing.T) {
	dir := t.TempDir()
	// Missing socket, and a stale socket nobody listens on.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	for _, path := range []string{filepath.Join(dir, "missing.sock"), stale} {
		c := NewClient(path)
		_, err := c.Status(testCtx(t))
		if err == nil || !strings.Contains(err.Error(), "warrend is not running") {
			t.Errorf("%s: Status error = %v, want 'warrend is not running'", filepath.Base(path), err)
		}
		if _, err := c.Dial(testCtx(t), "web:80"); err == nil || !strings.Contains(err.Error(), "warrend is not running") {
			t.Errorf("%s: Dial error = %v", filepath.Base(path), err)
		}
		c.Close()
	}
}

// TestClientBadResponses checks the Client reports a server that is not
// warrend, or that breaks off, instead of returning zero values.
func TestClientBadResponses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v0/status", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "not json") })
	mux.HandleFunc("POST /v0/up", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, `{"progress":"x"}`+"\n") })
	mux.HandleFunc("GET /v0/netcheck", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "plain text", http.StatusTeapot) })
	srv := &http.Server{Handler: mux}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	defer func() { srv.Close(); <-done }()
	c := NewClient(path)
	defer c.Close()
	ctx := testCtx(t)
	if _, err := c.Status(ctx); err == nil || !strings.Contains(err.Error(), "bad response") {
		t.Errorf("Status error = %v", err)
	}
	if _, err := c.Up(ctx, UpRequest{}, nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Up error = %v, want unexpected EOF", err)
	}
	if _, err := c.Netcheck(ctx); err == nil || !strings.Contains(err.Error(), "418") {
		t.Errorf("Netcheck error = %v, want the status", err)
	}
}

func TestServeReturnsWhenListenerFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "warrend.sock")
	ln, err := Listen(path, Access{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(Config{Backend: newFakeBackend()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background(), ln) }()
	// Wait until it serves, then pull the listener away.
	c := NewClient(path)
	defer c.Close()
	if _, err := c.Status(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	ln.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Serve returned nil after its listener failed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its listener was closed")
	}
	_ = os.Remove(path)
}
