package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/buildtest"
	"github.com/warrenmesh/warren/internal/tstest/netns"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/tstest/winetest"
	"github.com/warrenmesh/warren/node/localapi"
)

// TestWindowsNodeUnderWine runs the Windows build for real: warrend.exe
// in userspace mode under Wine, its local API on a named pipe that
// warren.exe (also under Wine) uses to join a coordinator on loopback
// with a pre-auth key; then a page served by a Linux warrend is fetched
// through warrend.exe's SOCKS5 proxy. Under Wine 8 Go's net package gets
// no UDP socket, so the Windows node runs on the coordinator's relay (it
// logs so); the path is still WireGuard end to end.
func TestWindowsNodeUnderWine(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: builds the binaries and runs Wine")
	}
	dir := t.TempDir()
	wine := winetest.Find(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin := buildtest.Build(t, "warren-coordinator", "warrend")
	winBin := buildtest.BuildFor(t, "windows", "amd64", "warrend", "warren")
	start := time.Now()
	if err := wine.Init(ctx, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = wine.Shutdown() }) // ends warrend.exe too, whatever state it is in
	if err := wine.Prepare(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Wine prefix ready in %v", time.Since(start).Round(time.Millisecond))

	// The coordinator, with its relay, and a Linux node serving a page.
	coordAddr := buildtest.FreePort(t)
	coordURL := "http://" + coordAddr
	coord := netns.StartCmd(t, "host", exec.Command(filepath.Join(bin, "warren-coordinator"), "serve",
		"--state-dir", filepath.Join(dir, "coordinator"), "--listen", coordAddr, "--stun-listen", "127.0.0.1:0",
		"--bootstrap-user", "admin@warren.internal"))
	if _, err := coord.WaitFor("Join a node", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	authKey := regexp.MustCompile(`wpk_[a-z0-9]{32}`).FindString(coord.Output())
	page := servePage(t, "hello from the Linux node")
	linuxSock := filepath.Join(dir, "linux.sock")
	linux := netns.StartCmd(t, "host", exec.Command(filepath.Join(bin, "warrend"), "--state-dir", filepath.Join(dir, "linux"),
		"--socket", linuxSock, "--socks5", "", "--expose", "80="+page))
	if _, err := linux.WaitFor("warrend running", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	lc := localapi.NewClient(linuxSock)
	defer lc.Close()
	if _, err := lc.Up(ctx, localapi.UpRequest{Coordinator: coordURL, AuthKey: authKey, Hostname: "server"}, nil); err != nil {
		t.Fatalf("up the Linux node: %v", err)
	}

	// The Windows node: its pipe named for this test run.
	var suffix [4]byte
	rand.Read(suffix[:])
	pipe := `\\.\pipe\warrend-test-` + hex.EncodeToString(suffix[:])
	proxy := buildtest.FreePort(t)
	win := netns.StartCmd(t, "wine", wine.Command(context.Background(), filepath.Join(winBin, "warrend.exe"),
		"--state-dir", filepath.Join(dir, "windows"), "--socket", pipe, "--socks5", proxy))
	if _, err := win.WaitFor("warrend running", time.Minute); err != nil {
		t.Fatal(err)
	}
	warren := func(args ...string) (string, error) {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		out, err := wine.Command(cctx, filepath.Join(winBin, "warren.exe"), append([]string{"--socket", pipe}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := warren("up", "--coordinator", coordURL, "--auth-key", authKey, "--hostname", "laptop"); err != nil {
		t.Fatalf("warren.exe up: %v\n%s", err, out)
	}

	var body string
	poll.Until(t, time.Minute, "a page from the Linux node through warrend.exe's SOCKS5 proxy", func() error {
		var err error
		body, err = getThroughSOCKS(ctx, proxy, "http://server/")
		return err
	})
	if !strings.Contains(body, "hello from the Linux node") {
		t.Fatalf("got %q through the proxy", body)
	}
	out, err := warren("status")
	if err != nil || !strings.Contains(out, "server") {
		t.Errorf("warren.exe status: %v\n%s", err, out)
	}
	t.Logf("warrend.exe served a page from the Linux node %v after Wine started; status:\n%s", time.Since(start).Round(time.Millisecond), out)
}

// servePage serves text over HTTP on a loopback port until the test ends
// and returns its address.
func servePage(t *testing.T, text string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, text)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// getThroughSOCKS fetches target through a SOCKS5 proxy that resolves the
// name (as curl --socks5-hostname does).
func getThroughSOCKS(ctx context.Context, proxy, target string) (string, error) {
	tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "socks5h", Host: proxy})}
	defer tr.CloseIdleConnections()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, target, nil)
	if err != nil {
		return "", err
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %s", resp.Status)
	}
	return string(b), err
}
