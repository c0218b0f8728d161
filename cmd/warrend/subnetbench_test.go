package main

import (
	"encoding/json"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/buildtest"
	"github.com/warrenmesh/warren/internal/tstest/netns"
	"github.com/warrenmesh/warren/internal/tstest/nscoord"
	"github.com/warrenmesh/warren/internal/tstest/poll"
)

// benchPolicy is failoverPolicy with the router's own port 9001 open to
// the admin too (the direct-mesh baseline).
const benchPolicy = `{
	"tagOwners": {"tag:router": ["autogroup:admin"]},
	"autoApprovers": {"routes": {"10.20.0.0/24": ["tag:router"]}},
	"acls": [{"action": "accept", "src": ["admin@warren.internal"], "dst": ["10.20.0.0/24:*", "tag:router:9001"]}],
}`

// BenchmarkSubnetRouterUserspace measures TCP download throughput from a
// LAN host (10.20.0.5, running no Warren) through a userspace-mode subnet
// router to the laptop's SOCKS5 proxy ("userspace-router"), beside the
// same laptop reading from a sink on the router itself through its mesh
// address ("direct-mesh": the router's --expose forwards to the sink on
// its loopback), in the same run; it logs the ratio (the goal:
// at least 0.5).
func BenchmarkSubnetRouterUserspace(b *testing.B) {
	netns.Skip(b)
	bin := buildtest.Build(b, "warren-coordinator", "warrend", "warren")
	laptop, router, lan := netns.New(b, "hbench-laptop"), netns.New(b, "hbench-router"), netns.New(b, "hbench-lan")
	netns.Connect(laptop, router, "10.77.1.1/24", "10.77.1.2/24")
	netns.Connect(router, lan, "10.20.0.1/24", "10.20.0.5/24")
	var lanLn, localLn net.Listener
	if err := lan.Do(func() (err error) { lanLn, err = net.Listen("tcp", "10.20.0.5:9000"); return err }); err != nil {
		b.Fatal(err)
	}
	if err := router.Do(func() (err error) { localLn, err = net.Listen("tcp", "127.0.0.1:9000"); return err }); err != nil {
		b.Fatal(err)
	}
	stopLAN, stopLocal := serveFlood(lanLn), serveFlood(localLn)
	defer stopLAN()
	defer stopLocal()

	dir := b.TempDir()
	coord := nscoord.Start(b, laptop, bin, dir, "10.77.1.1:8080", benchPolicy)
	adminKey := coord.AdminKey
	routerKey := coord.Key(b, nscoord.Admin, "--tag", "tag:router")
	warren := filepath.Join(bin, "warren")
	for _, n := range []struct {
		ns             *netns.Namespace
		name, ip, key  string
		daemon, upArgs []string
	}{
		{router, "router", "10.77.1.2", routerKey, []string{"--socks5", "", "--expose", "9001=127.0.0.1:9000"},
			[]string{"--advertise-tags", "tag:router", "--advertise-routes", "10.20.0.0/24"}},
		{laptop, "laptop", "10.77.1.1", adminKey, []string{"--socks5", "127.0.0.1:1081"}, nil},
	} {
		sock := filepath.Join(dir, n.name+".sock")
		d := n.ns.Start(filepath.Join(bin, "warrend"), append([]string{"--state-dir", filepath.Join(dir, n.name), "--socket", sock,
			"--endpoint", n.ip}, n.daemon...)...)
		if _, err := d.WaitFor("warrend running", 30*time.Second); err != nil {
			b.Fatal(err)
		}
		n.ns.Run(warren, append([]string{"--socket", sock, "up", "--coordinator", "http://10.77.1.1:8080", "--auth-key", n.key,
			"--hostname", n.name}, n.upArgs...)...)
	}
	var st struct {
		Peers []struct {
			Name      string
			Addresses []string
		}
	}
	var routerMesh string
	poll.Until(b, 60*time.Second, "the laptop to see the router", func() error {
		out, err := laptop.TryRun(warren, "--socket", filepath.Join(dir, "laptop.sock"), "status", "--json")
		if err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			return err
		}
		for _, p := range st.Peers {
			if p.Name == "router" && len(p.Addresses) > 0 {
				routerMesh = p.Addresses[0][:len(p.Addresses[0])-len("/32")]
				return nil
			}
		}
		return io.ErrUnexpectedEOF
	})

	rates := map[string]float64{}
	for _, tc := range []struct{ name, target string }{
		{"direct-mesh", net.JoinHostPort(routerMesh, "9001")},
		{"userspace-router", "10.20.0.5:9000"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var c net.Conn
			poll.Until(b, 60*time.Second, "a connection to "+tc.target, func() (err error) {
				c, err = socksDial(laptop, "127.0.0.1:1081", tc.target, 5*time.Second)
				return err
			})
			defer c.Close()
			buf := make([]byte, 1<<20)
			b.SetBytes(int64(len(buf)))
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
			}
			rates[tc.name] = float64(b.N*len(buf)) / time.Since(start).Seconds()
		})
	}
	if rates["direct-mesh"] > 0 {
		b.Logf("userspace router: %.1f MB/s, direct mesh: %.1f MB/s, ratio %.2f (goal >= 0.5)",
			rates["userspace-router"]/1e6, rates["direct-mesh"]/1e6, rates["userspace-router"]/rates["direct-mesh"])
	}
}

// serveFlood accepts connections on ln and writes to each as fast as it
// can until it fails; the returned func stops it.
func serveFlood(ln net.Listener) (stop func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				chunk := make([]byte, 64<<10)
				for {
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			}()
		}
	}()
	return func() { ln.Close(); <-done }
}
