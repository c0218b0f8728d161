//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/warrenmesh/warren/internal/tstest/buildtest"
	"github.com/warrenmesh/warren/internal/tstest/netns"
	"github.com/warrenmesh/warren/internal/tstest/nscoord"
	"github.com/warrenmesh/warren/internal/tstest/poll"
)

// TestTUNSubnetRouter: a laptop namespace in kernel TUN mode reaches a
// plain host on 10.20.0.0/24, which runs no Warren, with a plain curl (no
// proxy) through a subnet router in kernel TUN mode in another namespace:
// the router's kernel forwards, and the laptop's kernel routes the prefix
// into its TUN device once the route is approved. A denied port and a
// denied user are refused at the router. With SNAT (the default) the host
// sees the router's address; with --snat-subnet-routes=false it sees the
// laptop's mesh address. Stopping the router's warrend leaves no nftables
// table and IP forwarding as it found it.
func TestTUNSubnetRouter(t *testing.T) {
	netns.Skip(t)
	if testing.Short() {
		t.Skip("skipping: builds and runs the binaries")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("skipping: curl is not installed (apt-get install curl)")
	}
	bin := buildtest.Build(t, "warren-coordinator", "warrend", "warren")
	for _, tc := range []struct {
		name string
		snat bool
	}{{"snat", true}, {"no-snat", false}} {
		t.Run(tc.name, func(t *testing.T) { testTUNSubnetRouter(t, bin, tc.snat) })
	}
}

func testTUNSubnetRouter(t *testing.T, bin string, snat bool) {
	laptop, router, lan := netns.New(t, "f-tsub-laptop"), netns.New(t, "f-tsub-router"), netns.New(t, "f-tsub-lan")
	netns.Connect(laptop, router, "10.77.1.1/24", "10.77.1.2/24")
	netns.Connect(router, lan, "10.20.0.1/24", "10.20.0.5/24")
	if !snat {
		// The host needs a route back to the mesh sources it sees.
		lan.Run("ip", "route", "add", "100.64.0.0/10", "via", "10.20.0.1")
	}
	dir := t.TempDir()
	coord := nscoord.Start(t, laptop, bin, dir, "10.77.1.1:8080", subnetPolicy)
	adminKey := coord.AdminKey
	admin := coord.Admin
	admin("users", "create", "bob@warren.internal")
	bobKey := coord.Key(t, "bob@warren.internal")
	routerKey := coord.Key(t, nscoord.Admin, "--tag", "tag:router")
	stopLAN := serveLAN(t, lan)
	defer stopLAN()

	tag := "s"
	if !snat {
		tag = "n"
	}
	warren := filepath.Join(bin, "warren")
	type node struct {
		ns       *netns.Namespace
		name, ip string
		key      string
		daemon   []string
		up       []string
	}
	nodes := []node{
		{router, "router", "10.77.1.2", routerKey,
			[]string{"--tun", "wrnf0", "--dns", "off", "--wg-name", "wrntest-f-r" + tag, "--socks5", "", "--snat-subnet-routes=" + fmt.Sprint(snat)},
			[]string{"--advertise-tags", "tag:router", "--advertise-routes", "10.20.0.0/24"}},
		{laptop, "laptop", "10.77.1.1", adminKey, []string{"--tun", "wrnf0", "--dns", "off", "--wg-name", "wrntest-f-l" + tag, "--socks5", ""}, nil},
		// bob shares the laptop's namespace, so in userspace mode (one TUN
		// device per namespace routes the mesh).
		{laptop, "bob", "10.77.1.1", bobKey, []string{"--socks5", "127.0.0.1:1082"}, nil},
	}
	daemons := map[string]*netns.Process{}
	for _, n := range nodes {
		sock := filepath.Join(dir, n.name+".sock")
		d := n.ns.Start(filepath.Join(bin, "warrend"), append([]string{"--state-dir", filepath.Join(dir, n.name), "--socket", sock,
			"--endpoint", n.ip}, n.daemon...)...)
		if _, err := d.WaitFor("warrend running", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		daemons[n.name] = d
		n.ns.Run(warren, append([]string{"--socket", sock, "up", "--coordinator", "http://10.77.1.1:8080", "--auth-key", n.key,
			"--hostname", n.name}, n.up...)...)
	}
	curl := func(args ...string) (string, error) {
		return laptop.TryRun("curl", append([]string{"-sS", "-m", "3"}, args...)...)
	}

	// Not approved: the laptop has no route, and nothing reaches the host.
	if out, err := curl("http://10.20.0.5/"); err == nil {
		t.Fatalf("an unapproved route carried traffic: %q", out)
	}
	var listed []struct {
		ID   int64
		Name string
	}
	if err := json.Unmarshal([]byte(admin("routes", "list", "--json")), &listed); err != nil || len(listed) != 1 || listed[0].Name != "router" {
		t.Fatalf("routes list: %+v, %v", listed, err)
	}
	approved := time.Now()
	admin("routes", "approve", fmt.Sprint(listed[0].ID), "10.20.0.0/24")
	var out string
	poll.Until(t, 30*time.Second, "the approved route to carry traffic", func() (err error) {
		out, err = curl("http://10.20.0.5/")
		return err
	})
	t.Logf("approved route in use after %v", time.Since(approved).Round(time.Millisecond))
	if route := laptop.Run("ip", "route", "show", "10.20.0.0/24"); !strings.Contains(route, "dev wrnf0") {
		t.Errorf("the laptop's route to 10.20.0.0/24: %q, want one through wrnf0", route)
	}
	if snat {
		if !strings.HasPrefix(out, "lan host sees 10.20.0.1:") {
			t.Fatalf("through the router with SNAT: %q", out)
		}
		// A denied port, and a user the policy does not name, are refused
		// at the router.
		if out, err := curl("telnet://10.20.0.5:22"); err == nil || strings.Contains(out, "SSH-2.0") {
			t.Fatalf("port 22 behind the router answered: %q, %v", out, err)
		}
		if out, err := curl("--proxy", "socks5h://127.0.0.1:1082", "http://10.20.0.5/"); err == nil {
			t.Fatalf("bob reached the routed network: %q", out)
		}
	} else if !strings.HasPrefix(out, "lan host sees 100.64.") {
		t.Fatalf("through the router without SNAT: %q, want the laptop's mesh address", out)
	}

	// While it routes: forwarding on, and Warren's table with SNAT only.
	if v := strings.TrimSpace(router.Run("cat", "/proc/sys/net/ipv4/ip_forward")); v != "1" {
		t.Errorf("router's ip_forward = %s while it routes, want 1", v)
	}
	if got := nftTables(t, router); snat != (len(got) == 1 && got[0] == "warren-wrnf0") || !snat && len(got) != 0 {
		t.Errorf("router's nftables tables while it routes (snat %v): %q", snat, got)
	}
	if snat {
		// A crash leaves the table behind; the next start replaces it.
		daemons["router"].Kill()
		d := router.Start(filepath.Join(bin, "warrend"), append([]string{"--state-dir", filepath.Join(dir, "router"),
			"--socket", filepath.Join(dir, "router.sock"), "--endpoint", "10.77.1.2"}, nodes[0].daemon...)...)
		daemons["router"] = d
		poll.Until(t, 30*time.Second, "the restarted router to carry traffic", func() (err error) {
			out, err = curl("http://10.20.0.5/")
			return err
		})
		if got := nftTables(t, router); len(got) != 1 || got[0] != "warren-wrnf0" {
			t.Errorf("router's nftables tables after a crash and a restart: %q, want one warren-wrnf0", got)
		}
		// What the crashed run turned on, the restart cannot know was off.
		router.Run("sysctl", "-qw", "net.ipv4.ip_forward=0")
	}

	// warrend's end leaves the router's namespace as it found it.
	if err := daemons["router"].Stop(); err != nil {
		t.Fatal(err)
	}
	if v := strings.TrimSpace(router.Run("cat", "/proc/sys/net/ipv4/ip_forward")); v != "0" {
		t.Errorf("after warrend stopped, ip_forward = %s, want 0 as before", v)
	}
	if got := nftTables(t, router); len(got) != 0 {
		t.Errorf("after warrend stopped, nftables tables remain: %q", got)
	}
}

// nftTables lists the nftables tables in ns.
func nftTables(t *testing.T, ns *netns.Namespace) []string {
	t.Helper()
	var names []string
	if err := ns.Do(func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		tables, err := c.ListTables()
		for _, tb := range tables {
			names = append(names, tb.Name)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return names
}

// serveLAN runs a plain host's services in lan at 10.20.0.5: HTTP on 80
// saying who called, and a listener on 22 that the policy does not open.
func serveLAN(t *testing.T, lan *netns.Namespace) (stop func()) {
	t.Helper()
	var web, ssh net.Listener
	if err := lan.Do(func() (err error) {
		if web, err = net.Listen("tcp", "10.20.0.5:80"); err != nil {
			return err
		}
		ssh, err = net.Listen("tcp", "10.20.0.5:22")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "lan host sees %s", r.RemoteAddr)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(web) }()
	go func() {
		for {
			c, err := ssh.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("SSH-2.0-lan\r\n"))
			c.Close()
		}
	}()
	return func() {
		srv.Close()
		ssh.Close()
	}
}
