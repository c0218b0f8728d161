//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/buildtest"
	"github.com/warrenmesh/warren/internal/tstest/netns"
	"github.com/warrenmesh/warren/internal/tstest/nscoord"
	"github.com/warrenmesh/warren/internal/tstest/poll"
)

// TestUserspaceRouterPing: a laptop in kernel TUN mode pings a plain host
// behind a userspace-mode subnet router with the system's ping(8). The
// router pings the host from its own host and answers only when the host
// did: an address on the routed network where nobody lives stays silent
// (gVisor alone would have answered ICMPv6 for any routed address).
func TestUserspaceRouterPing(t *testing.T) {
	netns.Skip(t)
	if testing.Short() {
		t.Skip("skipping: builds and runs the binaries")
	}
	if _, err := exec.LookPath("ping"); err != nil {
		t.Skip("skipping: ping is not installed (apt-get install iputils-ping)")
	}
	bin := buildtest.Build(t, "warren-coordinator", "warrend", "warren")
	laptop, router, lan := netns.New(t, "i-ping-laptop"), netns.New(t, "i-ping-router"), netns.New(t, "i-ping-lan")
	netns.Connect(laptop, router, "10.77.1.1/24", "10.77.1.2/24")
	netns.Connect(router, lan, "10.20.0.1/24", "10.20.0.5/24")
	dir := t.TempDir()
	coord := nscoord.Start(t, laptop, bin, dir, "10.77.1.1:8080", subnetPolicy)
	routerKey := coord.Key(t, nscoord.Admin, "--tag", "tag:router")
	warren := filepath.Join(bin, "warren")
	for _, n := range []struct {
		ns       *netns.Namespace
		name, ip string
		key      string
		daemon   []string
		up       []string
	}{
		{router, "router", "10.77.1.2", routerKey, nil, []string{"--advertise-tags", "tag:router", "--advertise-routes", "10.20.0.0/24"}},
		{laptop, "laptop", "10.77.1.1", coord.AdminKey, []string{"--tun", "wrni0", "--dns", "off", "--wg-name", "wrntest-i-ping", "--socks5", ""}, nil},
	} {
		sock := filepath.Join(dir, n.name+".sock")
		d := n.ns.Start(filepath.Join(bin, "warrend"), append([]string{"--state-dir", filepath.Join(dir, n.name), "--socket", sock,
			"--endpoint", n.ip}, n.daemon...)...)
		if _, err := d.WaitFor("warrend running", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		n.ns.Run(warren, append([]string{"--socket", sock, "up", "--coordinator", "http://10.77.1.1:8080", "--auth-key", n.key,
			"--hostname", n.name}, n.up...)...)
	}
	var listed []struct{ ID int64 }
	if err := json.Unmarshal([]byte(coord.Admin("routes", "list", "--json")), &listed); err != nil || len(listed) != 1 {
		t.Fatalf("routes list: %+v, %v", listed, err)
	}
	coord.Admin("routes", "approve", fmt.Sprint(listed[0].ID), "10.20.0.0/24")
	poll.Until(t, 30*time.Second, "ping through the userspace router", func() error {
		_, err := laptop.TryRun("ping", "-c", "1", "-W", "2", "10.20.0.5")
		return err
	})
	if out, err := laptop.TryRun("ping", "-c", "2", "-W", "2", "10.20.0.99"); err == nil {
		t.Fatalf("a routed address where no host lives answered ping: %s", out)
	}
}
