package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/buildtest"
	"github.com/warrenmesh/warren/internal/tstest/netns"
	"github.com/warrenmesh/warren/internal/tstest/nscoord"
	"github.com/warrenmesh/warren/internal/tstest/poll"
)

// subnetPolicy lets admin@warren.internal reach port 80 of the routed
// network, and nothing else; bob gets nothing.
const subnetPolicy = `{
	"tagOwners": {"tag:router": ["autogroup:admin"]},
	"acls": [{"action": "accept", "src": ["admin@warren.internal"], "dst": ["10.20.0.0/24:80"]}],
}`

// TestUserspaceSubnetRouter: a laptop namespace reaches a plain host on
// 10.20.0.0/24, which runs no Warren, through a userspace-mode subnet
// router in another namespace, with curl through the laptop's SOCKS5
// proxy. The route carries nothing until an admin approves it, and
// nothing once it is disabled, until a policy whose autoApprovers cover
// it approves it again; a denied port and a denied user are refused; the
// host sees the router's address.
func TestUserspaceSubnetRouter(t *testing.T) {
	netns.Skip(t)
	if testing.Short() {
		t.Skip("skipping: builds and runs the binaries")
	}
	bin := buildtest.Build(t, "warren-coordinator", "warrend", "warren")
	laptops, router, lan := netns.New(t, "sub-laptop"), netns.New(t, "sub-router"), netns.New(t, "sub-lan")
	netns.Connect(laptops, router, "10.77.1.1/24", "10.77.1.2/24")
	netns.Connect(router, lan, "10.20.0.1/24", "10.20.0.5/24")
	dir := t.TempDir()
	coord := nscoord.Start(t, laptops, bin, dir, "10.77.1.1:8080", subnetPolicy)
	adminKey := coord.AdminKey
	admin := coord.Admin
	admin("users", "create", "bob@warren.internal")
	bobKey := coord.Key(t, "bob@warren.internal")
	routerKey := coord.Key(t, nscoord.Admin, "--tag", "tag:router")

	// A plain host on the routed network: HTTP on 80 saying who called,
	// and a listener on 22 that the policy does not open.
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
	defer srv.Close()
	defer ssh.Close()
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

	warren := filepath.Join(bin, "warren")
	type node struct {
		ns         *netns.Namespace
		name, ip   string
		key, socks string
		args       []string
	}
	nodes := []node{
		{router, "router", "10.77.1.2", routerKey, "", []string{"--advertise-tags", "tag:router", "--advertise-routes", "10.20.0.0/24"}},
		{laptops, "laptop", "10.77.1.1", adminKey, "127.0.0.1:1081", nil},
		{laptops, "bob", "10.77.1.1", bobKey, "127.0.0.1:1082", nil},
	}
	socks := map[string]string{}
	for _, n := range nodes {
		sock := filepath.Join(dir, n.name+".sock")
		d := n.ns.Start(filepath.Join(bin, "warrend"), "--state-dir", filepath.Join(dir, n.name), "--socket", sock,
			"--endpoint", n.ip, "--socks5", n.socks)
		if _, err := d.WaitFor("warrend running", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		n.ns.Run(warren, append([]string{"--socket", sock, "up", "--coordinator", "http://10.77.1.1:8080", "--auth-key", n.key,
			"--hostname", n.name}, n.args...)...)
		socks[n.name] = n.socks
	}
	curl := func(who, url string) (string, error) {
		return laptops.TryRun("curl", "-sS", "-m", "3", "--proxy", "socks5h://"+socks[who], url)
	}

	// Not approved: nothing reaches the network.
	if out, err := curl("laptop", "http://10.20.0.5/"); err == nil {
		t.Fatalf("an unapproved route carried traffic: %q", out)
	}
	var listed []struct {
		ID   int64
		Name string
	}
	if err := json.Unmarshal([]byte(admin("routes", "list", "--json")), &listed); err != nil || len(listed) != 1 || listed[0].Name != "router" {
		t.Fatalf("routes list: %+v, %v", listed, err)
	}
	routerID := fmt.Sprint(listed[0].ID)
	approved := time.Now()
	admin("routes", "approve", routerID, "10.20.0.0/24")
	var out string
	poll.Until(t, 30*time.Second, "the approved route to carry traffic", func() (err error) {
		out, err = curl("laptop", "http://10.20.0.5/")
		return err
	})
	t.Logf("approved route in use after %v", time.Since(approved).Round(time.Millisecond))
	// SNAT: the host sees the router's address on its network.
	if !strings.HasPrefix(out, "lan host sees 10.20.0.1:") {
		t.Fatalf("through the router: %q", out)
	}
	// A denied port, and a user the policy does not name, are refused at
	// the router.
	if out, err := curl("laptop", "telnet://10.20.0.5:22"); err == nil || strings.Contains(out, "SSH-2.0") {
		t.Fatalf("port 22 behind the router answered: %q, %v", out, err)
	}
	if out, err := curl("bob", "http://10.20.0.5/"); err == nil {
		t.Fatalf("bob reached the routed network: %q", out)
	}

	disabled := time.Now()
	admin("routes", "disable", routerID, "10.20.0.0/24")
	poll.Until(t, 30*time.Second, "the disabled route to stop", func() error {
		if out, err := curl("laptop", "http://10.20.0.5/"); err == nil {
			return fmt.Errorf("still reached: %q", out)
		}
		return nil
	})
	t.Logf("disabled route cut after %v", time.Since(disabled).Round(time.Millisecond))

	// A policy whose autoApprovers cover the route approves it again.
	auto := filepath.Join(dir, "auto.hujson")
	if err := os.WriteFile(auto, []byte(strings.Replace(subnetPolicy, `"acls"`,
		`"autoApprovers": {"routes": {"10.20.0.0/16": ["tag:router"]}}, "acls"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	applied := time.Now()
	admin("policy", "apply", auto)
	poll.Until(t, 30*time.Second, "the auto-approved route to carry traffic", func() (err error) {
		_, err = curl("laptop", "http://10.20.0.5/")
		return err
	})
	t.Logf("auto-approved route in use after %v", time.Since(applied).Round(time.Millisecond))
}
