package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"go.uber.org/goleak"

	"github.com/warrenmesh/warren/derp"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/tstest/promscrape"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestFlagErrors(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "relay.key")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no admission", nil, "--insecure-admit-all for tests"},
		{"both", []string{"--admit-url", "https://c.example/api/v1/relay/admit", "--insecure-admit-all"}, "exclude each other"},
		{"clear text", []string{"--admit-url", "http://c.example/admit", "--admit-token-file", token}, "use https"},
		{"no token", []string{"--admit-url", "https://c.example/admit"}, "needs --admit-token-file"},
		{"bad url", []string{"--admit-url", "c.example", "--admit-token-file", token}, "want an http(s) URL"},
		{"tls half", []string{"--insecure-admit-all", "--tls-cert", "x"}, "go together"},
		{"stray argument", []string{"serve"}, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--key-file", keyFile, "--listen", "127.0.0.1:0", "--stun", ""}, tt.args...)
			err := run(context.Background(), args, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run %v: %v, want an error containing %q", tt.args, err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("error reveals the token: %v", err)
			}
		})
	}
}

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "relay.key")
	k1, created, err := loadOrCreateKey(path, quiet)
	if err != nil || !created {
		t.Fatalf("create: %v, created=%v", err, created)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", fi.Mode(), err)
	}
	k2, created, err := loadOrCreateKey(path, quiet)
	if err != nil || created || !k1.Equal(k2) {
		t.Fatalf("reload: %v, created=%v, same=%v", err, created, k1.Equal(k2))
	}
	if err := os.WriteFile(path, []byte("privnodekey:00\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadOrCreateKey(path, quiet); err == nil || !strings.Contains(err.Error(), "privrkey:") {
		t.Fatalf("corrupt key file: %v", err)
	}
}

// coordinator is a stub of the coordinator's admission endpoint.
type coordinator struct {
	mu       sync.Mutex
	admitted map[string]bool
	down     bool
	requests atomic.Int32
}

func (c *coordinator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.requests.Add(1)
	if r.Header.Get("Authorization") != "Bearer s3cret" {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if c.admitted[r.URL.Query().Get("key")] {
		io.WriteString(w, `{"admitted":true}`)
	} else {
		io.WriteString(w, `{"admitted":false}`)
	}
}

func (c *coordinator) set(k key.NodePublic, ok bool, down bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.admitted[k.String()] = ok
	c.down = down
}

func TestAdmitterCache(t *testing.T) {
	coord := &coordinator{admitted: map[string]bool{}}
	ts := httptest.NewServer(coord)
	defer ts.Close()
	u, _ := url.Parse(ts.URL + "/api/v1/relay/admit")
	a := newHTTPAdmitter(u, "s3cret", ts.Client(), quiet)
	now := time.Unix(1000, 0)
	a.now = func() time.Time { return now }
	ctx := context.Background()
	yes, no := key.NewNode().Public(), key.NewNode().Public()
	coord.set(yes, true, false)

	check := func(k key.NodePublic, want bool, wantRequests int32) {
		t.Helper()
		got, err := a.Admit(ctx, k)
		if err != nil || got != want {
			t.Fatalf("Admit = %v, %v; want %v", got, err, want)
		}
		if n := coord.requests.Load(); n != wantRequests {
			t.Fatalf("%d requests to the coordinator, want %d", n, wantRequests)
		}
	}
	check(yes, true, 1)
	check(yes, true, 1) // cached
	check(no, false, 2)
	now = now.Add(3 * time.Second)
	check(no, false, 2) // negative answers are cached 5 s
	now = now.Add(3 * time.Second)
	check(no, false, 3)
	now = now.Add(admitPositiveTTL)
	check(yes, true, 4) // positive answers 30 s

	// The coordinator is down: the last positive answer still counts for
	// a while; unknown keys get an error.
	coord.set(yes, true, true)
	now = now.Add(admitPositiveTTL)
	check(yes, true, 5)
	if _, err := a.Admit(ctx, key.NewNode().Public()); err == nil || !strings.Contains(err.Error(), "HTTP 503") {
		t.Fatalf("Admit while the coordinator is down: %v", err)
	}
	now = now.Add(admitStaleTTL)
	if _, err := a.Admit(ctx, yes); err == nil {
		t.Fatal("a stale positive answer counted forever")
	}

	// A wrong token says what to check, without the token.
	bad := newHTTPAdmitter(u, "wrong", ts.Client(), quiet)
	if _, err := bad.Admit(ctx, yes); err == nil || !strings.Contains(err.Error(), "--admit-token-file") || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("wrong token: %v", err)
	}
}

// lines collects what run prints, a line at a time.
type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
	ch  chan string
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		line, err := l.buf.ReadString('\n')
		if err != nil {
			l.buf.WriteString(line)
			return len(p), nil
		}
		l.ch <- strings.TrimSpace(line)
	}
}

// TestRun starts the relay command against a stub coordinator and uses
// it: relay, admission, health, probe and STUN.
func TestRun(t *testing.T) {
	coord := &coordinator{admitted: map[string]bool{}}
	cs := httptest.NewServer(coord)
	defer cs.Close()
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := &lines{ch: make(chan string, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--stun", "127.0.0.1:0",
			"--key-file", filepath.Join(dir, "relay.key"),
			"--admit-url", cs.URL + "/api/v1/relay/admit", "--admit-token-file", token,
			"--metrics-listen", "127.0.0.1:0", "--log-level", "error"}, out, io.Discard)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	var relayURL, stunAddr, metricsURL string
	for relayURL == "" || stunAddr == "" || metricsURL == "" {
		select {
		case line := <-out.ch:
			if rest, ok := strings.CutPrefix(line, "relay URL:"); ok {
				relayURL = strings.Fields(rest)[0]
			}
			if rest, ok := strings.CutPrefix(line, "STUN:"); ok {
				stunAddr = strings.Fields(rest)[1]
			}
			if rest, ok := strings.CutPrefix(line, "metrics:"); ok {
				metricsURL = strings.TrimSpace(rest)
			}
			if strings.Contains(line, "s3cret") || strings.Contains(line, "privrkey") {
				t.Fatalf("startup output reveals a secret: %q", line)
			}
		case err := <-done:
			t.Fatalf("run ended early: %v", err)
		}
	}

	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	defer dcancel()
	ka, kb := key.NewNode(), key.NewNode()
	coord.set(ka.Public(), true, false)
	coord.set(kb.Public(), true, false)
	a, err := derp.Dial(dctx, relayURL, ka, derp.ClientOptions{})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer a.Close()
	b, err := derp.Dial(dctx, relayURL, kb, derp.ClientOptions{})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer b.Close()
	if err := a.Send(dctx, kb.Public(), []byte("through the relay")); err != nil {
		t.Fatal(err)
	}
	if m, err := b.Recv(dctx); err != nil || string(m.(derp.Packet).Data) != "through the relay" {
		t.Fatalf("Recv: %#v, %v", m, err)
	}
	_, err = derp.Dial(dctx, relayURL, key.NewNode(), derp.ClientOptions{})
	if err == nil || err.Error() != "relay refused node key: not admitted by the coordinator" {
		t.Fatalf("Dial of an unknown key: %v", err)
	}

	// The relay's metrics moved with what just happened.
	m := promscrape.Scrape(t, metricsURL)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"warren_relay_clients", nil, 2},
		{"warren_relay_forwarded_packets_total", nil, 1},
		{"warren_relay_admissions_total", []string{"result", "admitted"}, 2},
		{"warren_relay_admissions_total", []string{"result", "denied"}, 1},
	} {
		if got, ok := m.Value(c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}

	base := strings.TrimSuffix(relayURL, "/derp")
	for path, want := range map[string]int{"/healthz": 200, "/derp/probe": 204, "/": 404} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	http.DefaultClient.CloseIdleConnections()

	// STUN.
	conn, err := net.Dial("udp4", stunAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
	if _, err := conn.Write(req.Raw); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("STUN: %v", err)
	}
	var resp stun.Message
	var xor stun.XORMappedAddress
	if err := stun.Decode(buf[:n], &resp); err != nil {
		t.Fatal(err)
	}
	if err := xor.GetFrom(&resp); err != nil || xor.String() != conn.LocalAddr().String() {
		t.Fatalf("STUN mapped %v (%v), want %v", xor, err, conn.LocalAddr())
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		t.Fatal("context ended early")
	}
}

// TestConnectionCap: a source over --max-conns-per-ip has its connection
// closed at once, while other sources are served.
func TestConnectionCap(t *testing.T) {
	dir := t.TempDir()
	relayURL := startRelay(t, "--listen", "127.0.0.1:0", "--stun", "", "--key-file", filepath.Join(dir, "relay.key"),
		"--insecure-admit-all", "--max-conns-per-ip", "1", "--log-level", "error")
	u, err := url.Parse(relayURL)
	if err != nil {
		t.Fatal(err)
	}
	held, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	// The first connection is being served: it gets an answer.
	if _, err := io.WriteString(held, "GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.ReadResponse(bufio.NewReader(held), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("first connection: %v", err)
	}
	over, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	_ = over.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := over.Read(make([]byte, 1)); err == nil {
		t.Fatal("a second connection from the same address was served")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("a second connection from the same address was left open")
	}
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://" + u.Host + "/healthz")
	if err != nil {
		t.Fatalf("another address: %v", err)
	}
	resp.Body.Close()
}

// startRelay runs warren-derp with args until the test ends and returns
// the relay URL it prints.
func startRelay(t *testing.T, args ...string) string {
	t.Helper()
	out := &lines{ch: make(chan string, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, out, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	for {
		select {
		case line := <-out.ch:
			if rest, ok := strings.CutPrefix(line, "relay URL:"); ok {
				return strings.Fields(rest)[0]
			}
		case err := <-done:
			done <- err // for the cleanup
			t.Fatalf("run ended early: %v", err)
		}
	}
}
