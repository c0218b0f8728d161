package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/warrenmesh/warren/internal/tstest/buildtest"
	"github.com/warrenmesh/warren/internal/tstest/netns"
	"github.com/warrenmesh/warren/internal/tstest/nscoord"
	"github.com/warrenmesh/warren/internal/tstest/poll"
)

// exitPolicy lets admin@warren.internal use exit nodes (and nothing
// else); bob gets nothing. Nodes tagged tag:exit are approved as exit
// nodes by the policy.
const exitPolicy = `{
	"tagOwners": {"tag:exit": ["autogroup:admin"]},
	"autoApprovers": {"exitNode": ["tag:exit"]},
	"acls": [{"action": "accept", "src": ["admin@warren.internal"], "dst": ["autogroup:internet:*"]}],
}`

// TestUserspaceExitNode: a laptop namespace reaches an "internet"
// namespace (203.0.113.10, behind the exit node only) through a
// userspace-mode exit node, with curl through the laptop's SOCKS5 proxy;
// the internet host sees the exit node's address. The laptop's own LAN
// goes through the exit node (and is refused there: it is not internet)
// until --exit-node-allow-lan-access dials it from the laptop's host; a
// user the policy does not give autogroup:internet is refused the exit
// node (exit status 2); --exit-node= stops using it.
func TestUserspaceExitNode(t *testing.T) {
	netns.Skip(t)
	if testing.Short() {
		t.Skip("skipping: builds and runs the binaries")
	}
	bin := buildtest.Build(t, "warren-coordinator", "warrend", "warren")
	laptops, exitNS, inet := netns.New(t, "g-exit-laptop"), netns.New(t, "g-exit-node"), netns.New(t, "g-exit-inet")
	netns.Connect(laptops, exitNS, "10.77.1.1/24", "10.77.1.2/24")
	_, inetDev := netns.Connect(exitNS, inet, "203.0.113.1/24", "203.0.113.10/24")
	inet.AddAddr(inetDev, "203.0.113.53/24")
	// The laptop's resolver is on the internet (ip netns exec puts
	// /etc/netns/NAME/resolv.conf in place of /etc/resolv.conf).
	resolvDir := filepath.Join("/etc/netns", laptops.Name)
	if err := os.MkdirAll(resolvDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(resolvDir) })
	if err := os.WriteFile(filepath.Join(resolvDir, "resolv.conf"), []byte("nameserver 203.0.113.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dnsFrom := serveDNS(t, inet, "203.0.113.53:53", "www.example.test.", "203.0.113.10")
	dir := t.TempDir()
	coord := nscoord.Start(t, laptops, bin, dir, "10.77.1.1:8080", exitPolicy)
	adminKey := coord.AdminKey
	admin := coord.Admin
	admin("users", "create", "bob@warren.internal")
	bobKey := coord.Key(t, "bob@warren.internal")
	exitKey := coord.Key(t, nscoord.Admin, "--tag", "tag:exit")

	// HTTP servers saying who called: one on the internet, one on the
	// laptop's LAN (the laptop namespace's own network).
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
	serve(laptops, "10.77.1.1:8099", "lan")

	warren := filepath.Join(bin, "warren")
	type node struct {
		ns         *netns.Namespace
		name, ip   string
		key, socks string
		args       []string
	}
	nodes := []node{
		{exitNS, "exit", "10.77.1.2", exitKey, "", []string{"--advertise-tags", "tag:exit", "--advertise-exit-node"}},
		{laptops, "laptop", "10.77.1.1", adminKey, "127.0.0.1:1091", nil},
		{laptops, "bob", "10.77.1.1", bobKey, "127.0.0.1:1092", nil},
	}
	socks, sockets := map[string]string{}, map[string]string{}
	for _, n := range nodes {
		sock := filepath.Join(dir, n.name+".sock")
		d := n.ns.Start(filepath.Join(bin, "warrend"), "--state-dir", filepath.Join(dir, n.name), "--socket", sock,
			"--endpoint", n.ip, "--socks5", n.socks)
		if _, err := d.WaitFor("warrend running", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		n.ns.Run(warren, append([]string{"--socket", sock, "up", "--coordinator", "http://10.77.1.1:8080", "--auth-key", n.key,
			"--hostname", n.name}, n.args...)...)
		socks[n.name], sockets[n.name] = n.socks, sock
	}
	curl := func(who, url string) (string, error) {
		return laptops.TryRun("curl", "-sS", "-m", "3", "--proxy", "socks5h://"+socks[who], url)
	}
	cli := func(who string, args ...string) (string, error) {
		return laptops.TryRun(warren, append([]string{"--socket", sockets[who]}, args...)...)
	}

	// No exit node chosen: the internet is not a Warren address.
	if out, err := curl("laptop", "http://203.0.113.10/"); err == nil {
		t.Fatalf("reached the internet without an exit node: %q", out)
	}
	// The exit node, approved by autoApprovers, is offered to the laptop.
	poll.Until(t, 30*time.Second, "the laptop to be offered the exit node", func() error {
		out, err := cli("laptop", "exit-node", "list", "--json")
		if err != nil {
			return err
		}
		var list []struct {
			Name  string
			InUse bool
		}
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			return err
		}
		if len(list) != 1 || list[0].Name != "exit" || list[0].InUse {
			return fmt.Errorf("exit-node list: %s", out)
		}
		return nil
	})
	if _, err := cli("laptop", "up", "--exit-node", "exit"); err != nil {
		t.Fatal(err)
	}
	var out string
	poll.Until(t, 30*time.Second, "the exit node to carry traffic", func() (err error) {
		out, err = curl("laptop", "http://203.0.113.10/")
		return err
	})
	if !strings.HasPrefix(out, "internet sees 203.0.113.1:") {
		t.Fatalf("through the exit node: %q", out)
	}
	// A name outside the mesh is resolved through the exit node: the
	// resolver sees the exit node's address.
	if out, err := curl("laptop", "http://www.example.test/"); err != nil || !strings.HasPrefix(out, "internet sees 203.0.113.1:") {
		t.Fatalf("by name through the exit node: %q, %v", out, err)
	}
	if from := dnsFrom(); len(from) == 0 || slices.ContainsFunc(from, func(a string) bool { return a != "203.0.113.1" }) {
		t.Fatalf("the resolver was asked from %v, want only the exit node's 203.0.113.1", from)
	}
	if st, err := cli("laptop", "status"); err != nil || !strings.Contains(st, "exit node exit") {
		t.Fatalf("status does not show the exit node: %q, %v", st, err)
	}
	// The LAN goes to the exit node too, whose filter refuses it (the
	// policy's autogroup:internet is not private networks) ...
	if out, err := curl("laptop", "http://10.77.1.1:8099/"); err == nil {
		t.Fatalf("the LAN was reached without allow-lan-access: %q", out)
	}
	// ... until allow-lan-access dials it from the laptop's host.
	if _, err := cli("laptop", "up", "--exit-node-allow-lan-access"); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "the LAN to be reached directly", func() (err error) {
		out, err = curl("laptop", "http://10.77.1.1:8099/")
		return err
	})
	if !strings.HasPrefix(out, "lan sees 10.77.1.1:") {
		t.Fatalf("the LAN with allow-lan-access: %q", out)
	}
	poll.Until(t, 30*time.Second, "the exit node to carry traffic again", func() (err error) {
		out, err = curl("laptop", "http://203.0.113.10/")
		return err
	})

	// Bob may not use exit nodes: none offered, and choosing one is a
	// usage error.
	if out, err := cli("bob", "exit-node", "list", "--json"); err != nil || strings.TrimSpace(out) != "[]" {
		t.Fatalf("bob's exit-node list: %q, %v", out, err)
	}
	cmd := laptops.Command(warren, "--socket", sockets["bob"], "up", "--exit-node", "exit")
	b, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(b), "not an exit node") {
		t.Fatalf("bob chose the exit node: %v: %s", err, b)
	}
	if out, err := curl("bob", "http://203.0.113.10/"); err == nil {
		t.Fatalf("bob reached the internet: %q", out)
	}

	// --exit-node= stops using it.
	if _, err := cli("laptop", "up", "--exit-node="); err != nil {
		t.Fatal(err)
	}
	if out, err := curl("laptop", "http://203.0.113.10/"); err == nil {
		t.Fatalf("reached the internet after --exit-node=: %q", out)
	}
}

// serveDNS answers A queries for name with addr on addr in ns (UDP), and
// returns a function listing the source addresses of the queries so far.
func serveDNS(t *testing.T, ns *netns.Namespace, listen, name, addr string) func() []string {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() (err error) { pc, err = net.ListenPacket("udp", listen); return err }); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var from []string
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		host, _, _ := net.SplitHostPort(w.RemoteAddr().String())
		mu.Lock()
		from = append(from, host)
		mu.Unlock()
		m := new(dns.Msg)
		m.SetReply(req)
		if len(req.Question) == 1 && req.Question[0].Name == name && req.Question[0].Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.ParseIP(addr)})
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(from)
	}
}
