package nsbench

import (
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/netns"
	"github.com/warrenmesh/warren/internal/tstest/nscoord"
)

// The subnet router benchmark's network: a laptop namespace and a router
// namespace on one veth pair, and a plain LAN host (no Warren) behind the
// router on 10.20.0.0/24. Both Warren nodes run in kernel TUN mode.
const (
	tunSubnetLaptop = "10.213.0.1"
	tunSubnetRouter = "10.213.0.2"
	tunSubnetHost   = "10.20.0.5"
	tunSubnetPolicy = `{"acls": [{"action": "accept", "src": ["admin@warren.internal"], "dst": ["*:*", "10.20.0.0/24:*"]}]}`
)

// BenchmarkTUNSubnetRouter measures one TCP stream from a TUN-mode laptop
// to a plain host behind a TUN-mode subnet router (the router's kernel
// forwards, with SNAT), beside the same stream to the router's own mesh
// address (direct mesh), in the same run. Each op is one MiB; of-direct is
// the ratio to the direct mesh stream. The summary (shown with -v) also
// gives the median ratio of interleaved pairs of runs, which a busy
// machine skews less; the goal is at least 0.8.
func BenchmarkTUNSubnetRouter(b *testing.B) {
	netns.Skip(b)
	bin := buildBenchnode(b)
	laptop, router, lan := netns.New(b, "f-sbench-laptop"), netns.New(b, "f-sbench-router"), netns.New(b, "f-sbench-lan")
	netns.Connect(laptop, router, tunSubnetLaptop+"/24", tunSubnetRouter+"/24")
	netns.Connect(router, lan, "10.20.0.1/24", tunSubnetHost+"/24")
	for _, ns := range []*netns.Namespace{router, lan} {
		sink := ns.Start(bin, "tcpsink", "-listen", ":"+sinkPort)
		if _, err := sink.WaitFor("listening", 10*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	direct := startTUNSubnetRouter(b, laptop, router)

	mbps := map[string]float64{}
	for _, m := range []struct{ name, dst string }{{"mesh-direct", direct}, {"subnet-router", tunSubnetHost}} {
		b.Run(m.name, func(b *testing.B) {
			v := sendBytes(b, laptop, bin, m.dst, b.N<<20)
			mbps[m.name] = v
			b.ReportMetric(v, "MB/s")
			if d := mbps["mesh-direct"]; d > 0 && m.name != "mesh-direct" {
				b.ReportMetric(v/d, "of-direct")
			}
		})
	}
	if mbps["mesh-direct"] > 0 && mbps["subnet-router"] > 0 {
		paired := pairedRatio(b, laptop, bin, direct, tunSubnetHost, mbps["mesh-direct"])
		verdict := "meets"
		if paired < 0.8 {
			verdict = "MISSES"
		}
		b.Logf("single-stream TCP from a TUN-mode laptop:\n  %-14s %9.1f MB/s\n  %-14s %9.1f MB/s  %.2f of direct\n"+
			"goal: subnet router (TUN) >= 0.8 of direct mesh: %s (%.2f, median of %d interleaved pairs)",
			"mesh-direct", mbps["mesh-direct"], "subnet-router", mbps["subnet-router"], mbps["subnet-router"]/mbps["mesh-direct"],
			verdict, paired, pairedRounds)
	}
}

// startTUNSubnetRouter starts a coordinator and warrend in kernel TUN mode in
// laptop and router (the router advertising 10.20.0.0/24, approved by the
// admin), waits until the laptop's kernel routes the prefix into its TUN
// device and the host answers through it, and returns the router's mesh
// IPv4 address.
func startTUNSubnetRouter(b *testing.B, laptop, router *netns.Namespace) string {
	b.Helper()
	dir := b.TempDir()
	bin := filepath.Join(dir, "bin")
	goBuild(b, bin+"/", prefixAll("github.com/warrenmesh/warren/cmd/", []string{"warren-coordinator", "warrend", "warren"})...)
	listen := tunSubnetLaptop + ":8080"
	coord := nscoord.Start(b, laptop, bin, dir, listen, tunSubnetPolicy)
	authKey := coord.AdminKey
	warren := filepath.Join(bin, "warren")
	socks := map[string]string{}
	for _, n := range []struct {
		ns       *netns.Namespace
		name, ip string
		up       []string
	}{
		{router, "router", tunSubnetRouter, []string{"--advertise-routes", "10.20.0.0/24"}},
		{laptop, "laptop", tunSubnetLaptop, nil},
	} {
		sock := filepath.Join(dir, n.name+".sock")
		socks[n.name] = sock
		d := n.ns.Start(filepath.Join(bin, "warrend"), "--state-dir", filepath.Join(dir, n.name), "--socket", sock,
			"--tun", "wrnf0", "--dns", "off", "--wg-name", "", "--endpoint", n.ip, "--socks5", "")
		if _, err := d.WaitFor("warrend running", 30*time.Second); err != nil {
			b.Fatal(err)
		}
		n.ns.Run(warren, append([]string{"--socket", sock, "up", "--coordinator", "http://" + listen, "--auth-key", authKey,
			"--hostname", n.name}, n.up...)...)
	}
	var listed []struct{ ID int64 }
	if err := json.Unmarshal([]byte(coord.Admin("routes", "list", "--json")), &listed); err != nil || len(listed) != 1 {
		b.Fatalf("routes list: %+v, %v", listed, err)
	}
	coord.Admin("routes", "approve", fmt.Sprint(listed[0].ID), "10.20.0.0/24")
	peer, err := waitForPeer(laptop, warren, socks["laptop"], "router", 30*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	// warrend is another process with no event to wait on: poll.
	deadline := time.Now().Add(30 * time.Second)
	for {
		route := laptop.Run("ip", "route", "show", "10.20.0.0/24")
		if strings.Contains(route, "dev wrnf0") {
			if laptop.Do(func() error {
				c, err := net.DialTimeout("tcp", net.JoinHostPort(tunSubnetHost, sinkPort), 2*time.Second)
				if err == nil {
					c.Close()
				}
				return err
			}) == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("the laptop has no working route to 10.20.0.0/24 through wrnf0 after 30 s: %q", route)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return peer.String()
}
