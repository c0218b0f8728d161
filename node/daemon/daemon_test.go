package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/tstest/testmesh"
	"github.com/warrenmesh/warren/node/daemon"
	"github.com/warrenmesh/warren/node/localapi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 10 * time.Second

// node is a daemon with its local API served on a socket, as warrend runs
// it.
type node struct {
	d      *daemon.Daemon
	dir    string
	api    *localapi.Client
	proxy  string // proxy address
	cancel context.CancelFunc
	done   chan struct{}
}

func startNode(t *testing.T, dir string, cfg daemon.Config) *node {
	t.Helper()
	cfg.StateDir = dir
	cfg.Endpoints = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}
	cfg.MinBackoff, cfg.MaxBackoff = 20*time.Millisecond, 200*time.Millisecond
	d, err := daemon.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "warrend.sock")
	ln, err := localapi.Listen(sock, localapi.Access{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := localapi.NewServer(localapi.Config{Backend: d})
	if err != nil {
		t.Fatal(err)
	}
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{d: d, dir: dir, api: localapi.NewClient(sock), proxy: pln.Addr().String(), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(n.done)
		pdone := make(chan struct{})
		go func() { defer close(pdone); _ = d.ServeProxy(ctx, pln) }()
		_ = srv.Serve(ctx, ln)
		<-pdone
	}()
	d.Start()
	t.Cleanup(n.stop)
	return n
}

// stop shuts the node down as warrend does on SIGTERM.
func (n *node) stop() {
	select {
	case <-n.done:
		return
	default:
	}
	n.d.Close()
	n.cancel()
	<-n.done
	n.api.Close()
}

func up(t *testing.T, n *node, m *testmesh.Mesh, hostname, authKey string) localapi.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var steps []string
	st, err := n.api.Up(ctx, localapi.UpRequest{Coordinator: m.URL, AuthKey: authKey, Hostname: hostname},
		func(s string) { steps = append(steps, s) })
	if err != nil {
		t.Fatalf("up %s: %v (progress: %q)", hostname, err, steps)
	}
	if len(steps) == 0 {
		t.Errorf("up %s reported no progress", hostname)
	}
	return st
}

// waitPeers waits until n's status lists want peers.
func waitPeers(t *testing.T, n *node, want int) localapi.Status {
	t.Helper()
	var st localapi.Status
	poll.Until(t, wait, fmt.Sprintf("status with %d peers", want), func() error {
		var err error
		st, err = n.api.Status(context.Background())
		switch {
		case err != nil:
			return err
		case st.State != localapi.StateRunning || len(st.Peers) != want:
			return fmt.Errorf("state %s, %d peers: %+v", st.State, len(st.Peers), st)
		}
		return nil
	})
	return st
}

// helloServer serves "hello from NAME" on loopback and returns its address.
func helloServer(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s", name)
	}), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// getVia fetches rawURL through an HTTP or SOCKS5 proxy URL.
func getVia(proxyURL, rawURL string) (string, error) {
	pu, err := url.Parse(proxyURL)
	if err != nil {
		return "", err
	}
	tr := &http.Transport{Proxy: http.ProxyURL(pu)}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: wait}
	resp, err := c.Get(rawURL)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func meshWithKey(t *testing.T) (*testmesh.Mesh, string) {
	m := testmesh.New(t, testmesh.Options{})
	u := m.User("ann@example.com")
	return m, m.AuthKey(registry.AuthKeyRequest{UserID: u.ID, Reusable: true})
}

// TestProxyReachesExposedService is the demo path: an app on the laptop
// uses the SOCKS5 or HTTP proxy to reach a service the server exposes on
// its mesh address, by name.
func TestProxyReachesExposedService(t *testing.T) {
	m, k := meshWithKey(t)
	svc := helloServer(t, "server")
	laptop := startNode(t, t.TempDir(), daemon.Config{})
	server := startNode(t, t.TempDir(), daemon.Config{Expose: []daemon.Expose{{Port: 80, Target: svc}}})
	up(t, laptop, m, "laptop", k)
	up(t, server, m, "server", k)
	st := waitPeers(t, laptop, 1)
	if st.Self.Name != "laptop" || st.Peers[0].Name != "server" || st.Domain == "" {
		t.Fatalf("status: %+v", st)
	}
	for _, target := range []string{"http://server/", "http://server." + st.Domain + "/", "http://" + st.Peers[0].Addresses[0].Addr().String() + "/"} {
		for _, p := range []string{"socks5h://" + laptop.proxy, "http://" + laptop.proxy} {
			body, err := getVia(p, target)
			if err != nil || body != "hello from server" {
				t.Fatalf("GET %s via %s: %q, %v", target, p, body, err)
			}
		}
	}
	st = waitPeers(t, laptop, 1)
	if !strings.HasPrefix(st.Peers[0].Path, "direct ") || st.Peers[0].RxBytes == 0 || st.Peers[0].LastHandshake.IsZero() {
		t.Fatalf("peer status after traffic: %+v", st.Peers[0])
	}
}

// TestLocalDialAndResolve covers the API warren forward uses.
func TestLocalDialAndResolve(t *testing.T) {
	m, k := meshWithKey(t)
	svc := helloServer(t, "db")
	laptop := startNode(t, t.TempDir(), daemon.Config{})
	db := startNode(t, t.TempDir(), daemon.Config{Expose: []daemon.Expose{{Port: 5432, Target: svc}}})
	up(t, laptop, m, "laptop", k)
	up(t, db, m, "db", k)
	waitPeers(t, laptop, 1)
	ctx := context.Background()

	a, err := laptop.api.Resolve(ctx, "db.")
	if err != nil || !a.Is4() {
		t.Fatalf("resolve db.: %v, %v", a, err)
	}
	for _, bad := range []string{"nosuch", "db.example.com", "8.8.8.8", ""} {
		if _, err := laptop.api.Resolve(ctx, bad); err == nil {
			t.Errorf("resolve %q succeeded", bad)
		}
	}
	c, err := laptop.api.Dial(ctx, "db:5432")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: db\r\n\r\n")
	b, _ := io.ReadAll(c)
	c.Close()
	if !strings.HasSuffix(string(b), "hello from db") {
		t.Fatalf("through dial: %q", b)
	}
	// A mesh address no peer has, an unknown name, and a closed port.
	for _, target := range []string{"100.64.9.9:80", "nosuch:80", "db:1"} {
		dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		c, err := laptop.api.Dial(dctx, target)
		cancel()
		if err == nil {
			c.Close()
			t.Errorf("dial %s succeeded", target)
		}
	}
}

// TestRestartKeepsIdentityAndAddress restarts a node from its state
// directory: it resumes without the auth key, with the same address.
func TestRestartKeepsIdentityAndAddress(t *testing.T) {
	m, k := meshWithKey(t)
	dir := t.TempDir()
	n := startNode(t, dir, daemon.Config{})
	first := up(t, n, m, "laptop", k)
	key := n.d.NodeKey()
	n.stop()

	again := startNode(t, dir, daemon.Config{})
	if again.d.NodeKey() != key {
		t.Fatal("node key changed across restart")
	}
	st := waitPeers(t, again, 0)
	if st.Self.Name != first.Self.Name || st.Self.Addresses[0] != first.Self.Addresses[0] || st.ListenPort != first.ListenPort {
		t.Fatalf("after restart: %s %v port %d, before: %s %v port %d",
			st.Self.Name, st.Self.Addresses, st.ListenPort, first.Self.Name, first.Self.Addresses, first.ListenPort)
	}
}

// TestDownUpLogout walks the node's lifecycle.
func TestDownUpLogout(t *testing.T) {
	m, k := meshWithKey(t)
	a := startNode(t, t.TempDir(), daemon.Config{})
	b := startNode(t, t.TempDir(), daemon.Config{})
	up(t, a, m, "a", k)
	first := up(t, b, m, "b", k)
	waitPeers(t, a, 1)
	ctx := context.Background()

	st, err := b.api.Down(ctx)
	if err != nil || st.State != localapi.StateStopped {
		t.Fatalf("down: %+v, %v", st, err)
	}
	if _, err := b.api.Dial(ctx, "a:80"); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("dial while down: %v", err)
	}
	// Up again needs no key and keeps the address.
	again, err := b.api.Up(ctx, localapi.UpRequest{}, nil)
	if err != nil || again.Self.Addresses[0] != first.Self.Addresses[0] {
		t.Fatalf("up after down: %+v, %v", again.Self, err)
	}
	if _, err := b.api.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, a, 0) // the coordinator expired b: a no longer sees it
	if _, err := b.api.Up(ctx, localapi.UpRequest{}, nil); err == nil || !strings.Contains(err.Error(), "coordinator") {
		t.Fatalf("up after logout without a coordinator: %v", err)
	}
	// Without an auth key the coordinator refuses the new node key.
	uctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if _, err := b.api.Up(uctx, localapi.UpRequest{Coordinator: m.URL}, nil); err == nil {
		t.Fatal("a logged-out node re-registered without a key")
	}
	if st, _ := b.api.Status(ctx); st.State != localapi.StateError || st.Error == "" {
		t.Fatalf("status after a refusal: %+v", st)
	}
	// With a key the same machine comes back as the same node.
	fresh := up(t, b, m, "b", k)
	if fresh.Self.ID != first.Self.ID || fresh.Self.Addresses[0] != first.Self.Addresses[0] {
		t.Fatalf("re-join after logout: %+v, was %+v", fresh.Self, first.Self)
	}
	waitPeers(t, a, 1)
}

// TestGarbageOnWireGuardPort sends junk to a node's UDP port; the node
// keeps working and nothing leaks (goleak checks at the end).
func TestGarbageOnWireGuardPort(t *testing.T) {
	m, k := meshWithKey(t)
	svc := helloServer(t, "server")
	laptop := startNode(t, t.TempDir(), daemon.Config{})
	server := startNode(t, t.TempDir(), daemon.Config{Expose: []daemon.Expose{{Port: 80, Target: svc}}})
	up(t, laptop, m, "laptop", k)
	st := up(t, server, m, "server", k)
	waitPeers(t, laptop, 1)
	c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", st.ListenPort))
	if err != nil {
		t.Fatal(err)
	}
	junk := [][]byte{{}, {1}, {4, 0, 0, 0}, make([]byte, 148), make([]byte, 1500), []byte(strings.Repeat("\x01\x00\x00\x00", 40))}
	for i := 0; i < 200; i++ {
		_, _ = c.Write(junk[i%len(junk)])
	}
	c.Close()
	if body, err := getVia("socks5h://"+laptop.proxy, "http://server/"); err != nil || body != "hello from server" {
		t.Fatalf("after garbage: %q, %v", body, err)
	}
}

func TestOversizedAndUnknownSOCKSRequests(t *testing.T) {
	m, k := meshWithKey(t)
	laptop := startNode(t, t.TempDir(), daemon.Config{})
	up(t, laptop, m, "laptop", k)
	for _, host := range []string{"nosuch", strings.Repeat("a", 255)} {
		_, err := getVia("socks5h://"+laptop.proxy, "http://"+host+"/")
		if err == nil {
			t.Fatalf("GET via proxy to %q succeeded", host[:min(len(host), 10)])
		}
	}
	c, err := net.Dial("tcp", laptop.proxy)
	if err != nil {
		t.Fatal("proxy stopped accepting after bad requests")
	}
	c.Close()
}

// unreachable is a transport for a coordinator that cannot be reached.
type unreachable struct{}

func (unreachable) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("network is unreachable (test)")
}

// TestRestartWhileCoordinatorUnreachable restarts a node that cannot reach
// the coordinator: it comes back on its cached netmap, tunnels and all.
func TestRestartWhileCoordinatorUnreachable(t *testing.T) {
	m, k := meshWithKey(t)
	svc := helloServer(t, "server")
	dir := t.TempDir()
	laptop := startNode(t, dir, daemon.Config{})
	server := startNode(t, t.TempDir(), daemon.Config{Expose: []daemon.Expose{{Port: 80, Target: svc}}})
	up(t, laptop, m, "laptop", k)
	up(t, server, m, "server", k)
	waitPeers(t, laptop, 1)
	// Traffic first: then the laptop's netmap has the server's endpoints.
	if body, err := getVia("socks5h://"+laptop.proxy, "http://server/"); err != nil || body != "hello from server" {
		t.Fatalf("before the restart: %q, %v", body, err)
	}
	laptop.stop() // writes the netmap cache

	again := startNode(t, dir, daemon.Config{HTTPClient: &http.Client{Transport: unreachable{}}})
	st := waitPeers(t, again, 1)
	if st.Connected {
		t.Fatal("connected to an unreachable coordinator")
	}
	if body, err := getVia("socks5h://"+again.proxy, "http://server/"); err != nil || body != "hello from server" {
		t.Fatalf("on the cached netmap: %q, %v", body, err)
	}
}
