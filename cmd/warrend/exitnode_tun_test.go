package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/warrenmesh/warren/internal/tstest/buildtest"
	"github.com/warrenmesh/warren/internal/tstest/netns"
	"github.com/warrenmesh/warren/internal/tstest/nscoord"
	"github.com/warrenmesh/warren/internal/tstest/poll"
)

// TestTUNExitNode: a TUN-mode laptop sends all its non-mesh traffic
// through a (userspace-mode) exit node: a plain curl reaches the
// "internet" namespace, which sees the exit node's address, while the
// laptop's own control connection, relay and WireGuard traffic to the
// coordinator's host keep the laptop's routing (they are marked). The
// laptop's LAN goes to the exit node too (refused there: not internet)
// until --exit-node-allow-lan-access keeps it direct; --exit-node=
// restores the laptop's routing rules and tables exactly.
func TestTUNExitNode(t *testing.T) { runTUNExitNode(t, false) }

// TestTUNExitNodeKernelExit is TestTUNExitNode with the exit node in
// kernel TUN mode too: it forwards through the kernel and masquerades
// (the Linux router of node/engine/router_linux.go, for 0.0.0.0/0).
func TestTUNExitNodeKernelExit(t *testing.T) { runTUNExitNode(t, true) }

func runTUNExitNode(t *testing.T, kernelExit bool) {
	netns.Skip(t)
	if testing.Short() {
		t.Skip("skipping: builds and runs the binaries")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("skipping: curl is not installed (apt-get install curl)")
	}
	bin := buildtest.Build(t, "warren-coordinator", "warrend", "warren")
	laptop, exitNS, inet, lan := netns.New(t, "g-tx-laptop"), netns.New(t, "g-tx-exit"), netns.New(t, "g-tx-inet"), netns.New(t, "g-tx-lan")
	netns.Connect(laptop, exitNS, "10.77.1.1/24", "10.77.1.2/24")
	_, inetDev := netns.Connect(exitNS, inet, "203.0.113.1/24", "203.0.113.10/24")
	netns.Connect(laptop, lan, "192.168.50.1/24", "192.168.50.5/24")
	inet.AddAddr(inetDev, "203.0.113.53/24")
	resolvDir := filepath.Join("/etc/netns", laptop.Name)
	if err := os.MkdirAll(resolvDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(resolvDir) })
	if err := os.WriteFile(filepath.Join(resolvDir, "resolv.conf"), []byte("nameserver 203.0.113.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dnsFrom := serveDNS(t, inet, "203.0.113.53:53", "www.example.test.", "203.0.113.10")
	dir := t.TempDir()
	// The coordinator (and its relay) run on the exit node's host: the
	// laptop reaches them over the network the exit routing would take.
	coord := nscoord.Start(t, exitNS, bin, dir, "10.77.1.2:8080", exitPolicy)
	adminKey := coord.AdminKey
	exitKey := coord.Key(t, nscoord.Admin, "--tag", "tag:exit")
	serve := func(ns *netns.Namespace, addr, who string) {
		var ln net.Listener
		if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s sees %s", who, r.RemoteAddr)
		}), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { srv.Close() })
	}
	serve(inet, "203.0.113.10:80", "internet")
	serve(lan, "192.168.50.5:80", "lan")

	warren := filepath.Join(bin, "warren")
	exitSock, lapSock := filepath.Join(dir, "exit.sock"), filepath.Join(dir, "laptop.sock")
	exitArgs := []string{"--state-dir", filepath.Join(dir, "exit"), "--socket", exitSock, "--endpoint", "10.77.1.2", "--socks5", ""}
	if kernelExit {
		exitArgs = append(exitArgs, "--tun", "wrn-g-exit", "--dns", "off", "--wg-name", wgName("g-exit"))
	}
	d := exitNS.Start(filepath.Join(bin, "warrend"), exitArgs...)
	if _, err := d.WaitFor("warrend running", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	exitNS.Run(warren, "--socket", exitSock, "up", "--coordinator", "http://10.77.1.2:8080", "--auth-key", exitKey,
		"--hostname", "exit", "--advertise-tags", "tag:exit", "--advertise-exit-node")
	d = laptop.Start(filepath.Join(bin, "warrend"), "--state-dir", filepath.Join(dir, "laptop"), "--socket", lapSock,
		"--tun", "wrn-g-lap", "--dns", "off", "--wg-name", wgName("g-lap"), "--endpoint", "10.77.1.1", "--socks5", "")
	if _, err := d.WaitFor("warrend running", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	lapCLI := func(args ...string) (string, error) {
		return laptop.TryRun(warren, append([]string{"--socket", lapSock}, args...)...)
	}
	pristine := routing(laptop) // before the TUN device exists
	if _, err := lapCLI("up", "--coordinator", "http://10.77.1.2:8080", "--auth-key", adminKey, "--hostname", "laptop"); err != nil {
		t.Fatal(err)
	}
	curl := func(url string) (string, error) { return laptop.TryRun("curl", "-sS", "-m", "3", url) }
	if out, err := curl("http://203.0.113.10/"); err == nil {
		t.Fatalf("the laptop reached the internet without an exit node: %q", out)
	}
	before := routing(laptop)
	poll.Until(t, 30*time.Second, "the laptop to be offered the exit node", func() error {
		out, err := lapCLI("exit-node", "list", "--json")
		if err != nil || !strings.Contains(out, `"name": "exit"`) {
			return fmt.Errorf("exit-node list: %q, %v", out, err)
		}
		return nil
	})
	if _, err := lapCLI("up", "--exit-node", "exit"); err != nil {
		t.Fatal(err)
	}
	var out string
	poll.Until(t, 30*time.Second, "the exit node to carry the laptop's traffic", func() (err error) {
		out, err = curl("http://203.0.113.10/")
		return err
	})
	if !strings.HasPrefix(out, "internet sees 203.0.113.1:") {
		t.Fatalf("through the exit node: %q", out)
	}
	// WireGuard's own packets to the exit node keep the host's routing
	// (its socket is marked): the path is direct, proven by disco pings,
	// not the relay.
	poll.Until(t, 30*time.Second, "a direct path to the exit node", func() error {
		out, err := lapCLI("status", "--json")
		if err != nil {
			return err
		}
		var st struct{ Peers []struct{ Name, Path string } }
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			return err
		}
		if len(st.Peers) != 1 || !strings.HasPrefix(st.Peers[0].Path, "direct 10.77.1.2:") {
			return fmt.Errorf("peers %+v", st.Peers)
		}
		return nil
	})
	// A new connection to the coordinator keeps the host's routing too
	// (warrend's HTTP client marks its sockets).
	if out, err := lapCLI("netcheck", "--json"); err != nil || strings.Contains(out, `"coordinatorError"`) {
		t.Fatalf("the coordinator through the exit routing: %s, %v", out, err)
	}
	// The control connection kept working (it is marked): status is
	// connected and up answers.
	if st, err := lapCLI("status"); err != nil || !strings.Contains(st, "(connected)") || !strings.Contains(st, "exit node exit") {
		t.Fatalf("status with the exit node: %q, %v", st, err)
	}
	// MagicDNS forwards names outside the mesh to the system's resolver,
	// which it reaches through the exit node like any other traffic.
	// (The socket is made inside the namespace; the exchange may run on
	// any thread.)
	var c net.Conn
	if err := laptop.Do(func() (err error) { c, err = net.Dial("udp", "100.100.100.100:53"); return err }); err != nil {
		t.Fatal(err)
	}
	q := new(dns.Msg)
	q.SetQuestion("www.example.test.", dns.TypeA)
	client := &dns.Client{Timeout: 10 * time.Second}
	resp, _, err := client.ExchangeWithConn(q, &dns.Conn{Conn: c})
	c.Close()
	if a, ok := answerA(resp); err != nil || !ok || a != "203.0.113.10" {
		t.Fatalf("MagicDNS for an internet name: %v, %v (resolver asked from %v)", resp, err, dnsFrom())
	}
	if from := dnsFrom(); len(from) == 0 || slices.ContainsFunc(from, func(a string) bool { return a != "203.0.113.1" }) {
		t.Fatalf("the resolver was asked from %v, want only the exit node's 203.0.113.1", from)
	}
	if out, err := curl("http://192.168.50.5/"); err == nil {
		t.Fatalf("the LAN was reached directly without allow-lan-access: %q", out)
	}
	if _, err := lapCLI("up", "--exit-node-allow-lan-access"); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "the LAN to be reached directly", func() (err error) {
		out, err = curl("http://192.168.50.5/")
		return err
	})
	if !strings.HasPrefix(out, "lan sees 192.168.50.1:") {
		t.Fatalf("the LAN with allow-lan-access: %q", out)
	}
	poll.Until(t, 30*time.Second, "the exit node to carry traffic again", func() (err error) {
		out, err = curl("http://203.0.113.10/")
		return err
	})

	// --exit-node= restores the routing exactly.
	if _, err := lapCLI("up", "--exit-node="); err != nil {
		t.Fatal(err)
	}
	if after := routing(laptop); !slices.Equal(before, after) {
		t.Fatalf("routing not restored:\nbefore:\n%s\nafter:\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
	}
	if out, err := curl("http://203.0.113.10/"); err == nil {
		t.Fatalf("reached the internet after --exit-node=: %q", out)
	}
	if out, err := curl("http://192.168.50.5/"); err != nil || !strings.HasPrefix(out, "lan sees 192.168.50.1:") {
		t.Fatalf("the LAN after --exit-node=: %q, %v", out, err)
	}

	// warren down while using the exit node restores the routing of before
	// the node was up.
	if _, err := lapCLI("up", "--exit-node", "exit"); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "the exit node to carry traffic once more", func() (err error) {
		_, err = curl("http://203.0.113.10/")
		return err
	})
	if _, err := lapCLI("down"); err != nil {
		t.Fatal(err)
	}
	if after := routing(laptop); !slices.Equal(pristine, after) {
		t.Fatalf("routing not restored by down:\nbefore:\n%s\nafter:\n%s", strings.Join(pristine, "\n"), strings.Join(after, "\n"))
	}

	// So does warrend stopping (SIGTERM) while using it ...
	if _, err := lapCLI("up"); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "the exit node to carry traffic after up", func() (err error) {
		_, err = curl("http://203.0.113.10/")
		return err
	})
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if after := routing(laptop); !slices.Equal(pristine, after) {
		t.Fatalf("routing not restored by stopping warrend:\nbefore:\n%s\nafter:\n%s", strings.Join(pristine, "\n"), strings.Join(after, "\n"))
	}
	// ... and after a crash, the next start removes what is left.
	start := func() {
		d = laptop.Start(filepath.Join(bin, "warrend"), "--state-dir", filepath.Join(dir, "laptop"), "--socket", lapSock,
			"--tun", "wrn-g-lap", "--dns", "off", "--wg-name", wgName("g-lap"), "--endpoint", "10.77.1.1", "--socks5", "")
		if _, err := d.WaitFor("warrend running", 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	start()
	poll.Until(t, 30*time.Second, "the exit node to carry traffic after a restart", func() (err error) {
		_, err = curl("http://203.0.113.10/")
		return err
	})
	d.Kill()
	start()
	if _, err := lapCLI("up", "--exit-node="); err != nil {
		t.Fatal(err)
	}
	if after := routing(laptop); !slices.Equal(before, after) {
		t.Fatalf("routing not restored after a crash:\nbefore:\n%s\nafter:\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
	}
}

// routing is ns's routing rules and every routing table, one sorted
// line each. Kernel-made IPv6 link-local addresses are left out: the TUN
// device is created anew when warren up restarts the session and gets a
// random one, and the veths' appear when duplicate address detection
// ends.
func routing(ns *netns.Namespace) []string {
	var lines []string
	for _, args := range [][]string{{"-4", "rule"}, {"-6", "rule"}, {"-4", "route", "show", "table", "all"}, {"-6", "route", "show", "table", "all"}} {
		for _, l := range strings.Split(ns.Run("ip", args...), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "local fe80::") {
				lines = append(lines, args[0]+" "+l)
			}
		}
	}
	slices.Sort(lines)
	return lines
}

// answerA is the address of m's one answer, an A record.
func answerA(m *dns.Msg) (string, bool) {
	if m == nil || len(m.Answer) != 1 {
		return "", false
	}
	a, ok := m.Answer[0].(*dns.A)
	if !ok {
		return "", false
	}
	return a.A.String(), true
}
