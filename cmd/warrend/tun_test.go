package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/buildtest"
	"github.com/warrenmesh/warren/internal/tstest/netns"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/node/localapi"
)

// TestTUNModeAcrossNamespaces runs two warrend processes in kernel TUN
// mode in two network namespaces joined by a veth pair (the coordinator
// runs in the first), and fetches a page with curl from one to an HTTP
// server listening on the other's mesh address.
func TestTUNModeAcrossNamespaces(t *testing.T) {
	netns.Skip(t)
	if testing.Short() {
		t.Skip("skipping: builds and runs the binaries")
	}
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("skipping: curl is not installed (apt-get install curl)")
	}
	bin := buildtest.Build(t, "warren-coordinator", "warrend", "warren")
	hostA, hostB := netns.New(t, "laptop"), netns.New(t, "server")
	netns.Connect(hostA, hostB, "10.77.0.1/24", "10.77.0.2/24")
	dir := t.TempDir()

	coord := hostA.Start(filepath.Join(bin, "warren-coordinator"), "serve", "--state-dir", filepath.Join(dir, "coordinator"),
		"--listen", "10.77.0.1:8080", "--bootstrap-user", "admin@warren.internal")
	// The bootstrap key is printed on a line of its own, before "Join a node".
	if _, err := coord.WaitFor("Join a node", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	authKey := regexp.MustCompile(`wpk_[a-z0-9]{32}`).FindString(coord.Output())

	warren := filepath.Join(bin, "warren")
	socks := map[string]string{}
	// The server asks for "wrn%d": Linux names the device wrn0, as macOS
	// names every device utunN whatever --tun says; warren up must say
	// the name the OS gave.
	for _, h := range []struct {
		ns                 *netns.Namespace
		name, ip, tun, dev string
	}{{hostA, "laptop", "10.77.0.1", "warren0", "warren0"}, {hostB, "server", "10.77.0.2", "wrn%d", "wrn0"}} {
		sock := filepath.Join(dir, h.name+".sock")
		socks[h.name] = sock
		d := h.ns.Start(filepath.Join(bin, "warrend"), "--state-dir", filepath.Join(dir, h.name), "--socket", sock,
			"--tun", h.tun, "--dns", "off", "--endpoint", h.ip, "--socks5", "", "--wg-name", wgName(h.name))
		if _, err := d.WaitFor("warrend running", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		out := h.ns.Run(warren, "--socket", sock, "up", "--coordinator", "http://10.77.0.1:8080", "--auth-key", authKey, "--hostname", h.name)
		// In TUN mode apps reach peers directly, and no proxy runs here.
		if !strings.Contains(out, "Apps reach peers directly at their mesh addresses through "+h.dev) || strings.Contains(out, "proxy") {
			t.Errorf("warren up on %s in TUN mode printed %q; want how to reach peers directly, and no proxy", h.name, out)
		}
	}

	// The server's mesh address, once the laptop sees it.
	var serverAddr netip.Addr
	poll.Until(t, 30*time.Second, "the laptop to see the server", func() error {
		var st localapi.Status
		out, err := hostA.TryRun(warren, "--socket", socks["laptop"], "status", "--json")
		if err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			return err
		}
		for _, p := range st.Peers {
			if p.Name == "server" {
				serverAddr = p.Addresses[0].Addr()
				return nil
			}
		}
		return fmt.Errorf("peers %+v", st.Peers)
	})

	// An HTTP server on the server's mesh address, inside its namespace.
	var ln net.Listener
	if err := hostB.Do(func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(serverAddr, 80).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello over TUN from %s", r.RemoteAddr)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	out, err := hostA.TryRun(curl, "-sS", "-m", "10", "http://"+serverAddr.String()+"/")
	if err != nil || !strings.HasPrefix(out, "hello over TUN from 100.64.") {
		t.Fatalf("curl from the laptop's namespace: %q, %v", out, err)
	}
	// The veth address of the server is not served: only the mesh is.
	if out, err := hostA.TryRun(curl, "-sS", "-m", "3", "http://10.77.0.2/"); err == nil {
		t.Fatalf("the server's veth address answered: %q", out)
	}
	// warren ping works in TUN mode too.
	out = hostA.Run(warren, "--socket", socks["laptop"], "ping", "server", "-c", "1")
	if !strings.Contains(out, "pong from server") {
		t.Fatalf("ping: %q", out)
	}
	checkWGShow(t, hostA, wgName("laptop"))
}

// wgName is the WireGuard UAPI socket name a test node uses: unique to
// this test, since every namespace sees the same /var/run/wireguard.
func wgName(node string) string { return "wrntest-" + node }

// checkWGShow runs wg(8) from wireguard-tools against the node's UAPI
// socket: it must list the one peer, with a handshake and traffic both
// ways.
func checkWGShow(t *testing.T, ns *netns.Namespace, name string) {
	t.Helper()
	wg, err := exec.LookPath("wg")
	if err != nil {
		t.Log("skipping wg show: wireguard-tools is not installed (apt-get install wireguard-tools)")
		return
	}
	out := ns.Run(wg, "show", name)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^interface: ` + regexp.QuoteMeta(name) + `$`),
		regexp.MustCompile(`(?m)^  listening port: \d+$`),
		regexp.MustCompile(`(?m)^peer: [A-Za-z0-9+/]{43}=$`),
		regexp.MustCompile(`(?m)^  allowed ips: 100\.64\.\d+\.\d+/32, fd7a:115c:a1e0:[0-9a-f:]+/128$`),
		regexp.MustCompile(`(?m)^  latest handshake: (Now|.+ ago)$`),
		regexp.MustCompile(`(?m)^  transfer: [\d.]+ [KMG]?i?B received, [\d.]+ [KMG]?i?B sent$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("wg show %s: no line matching %s in:\n%s", name, want, out)
		}
	}
	// The private key is not shown (wg show hides it), and the socket is
	// root's alone.
	if strings.Contains(out, "private key: ") && !strings.Contains(out, "private key: (hidden)") {
		t.Errorf("wg show printed the private key:\n%s", out)
	}
	out = ns.Run("stat", "-c", "%a %U", "/var/run/wireguard/"+name+".sock")
	if out = strings.TrimSpace(out); out != "700 root" && out != "600 root" {
		t.Errorf("UAPI socket mode and owner: %q, want root's alone", out)
	}
}
