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
	for _, h := range []struct {
		ns       *netns.Namespace
		name, ip string
	}{{hostA, "laptop", "10.77.0.1"}, {hostB, "server", "10.77.0.2"}} {
		sock := filepath.Join(dir, h.name+".sock")
		socks[h.name] = sock
		d := h.ns.Start(filepath.Join(bin, "warrend"), "--state-dir", filepath.Join(dir, h.name), "--socket", sock,
			"--tun", "warren0", "--dns", "off", "--endpoint", h.ip, "--socks5", "")
		if _, err := d.WaitFor("warrend running", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		out := h.ns.Run(warren, "--socket", sock, "up", "--coordinator", "http://10.77.0.1:8080", "--auth-key", authKey, "--hostname", h.name)
		// In TUN mode apps reach peers directly, and no proxy runs here.
		if !strings.Contains(out, "Apps reach peers directly at their mesh addresses through warren0") || strings.Contains(out, "proxy") {
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
}
