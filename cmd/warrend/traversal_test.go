package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/buildtest"
	"github.com/warrenmesh/warren/internal/tstest/netns"
	"github.com/warrenmesh/warren/internal/tstest/netns/natlab"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/node/localapi"
	"github.com/warrenmesh/warren/node/netcheck"
)

// natMesh is a coordinator (with its embedded relay and STUN) and a
// standalone warren-derp (a second region, on the second public address)
// in a natlab's public namespace, and warrend in TUN mode on each LAN
// host.
type natMesh struct {
	t         *testing.T
	lab       *natlab.Lab
	warren    string
	socks     map[string]string // site name -> local API socket
	daemons   map[string]*netns.Process
	args      map[string][]string // site name -> warrend's command line
	leftAddr  netip.Addr          // mesh addresses
	rightAddr netip.Addr
}

func startNATMesh(t *testing.T, bin string, lab *natlab.Lab) *natMesh {
	t.Helper()
	dir := t.TempDir()
	pub, pub2 := lab.PublicIP.String(), lab.PublicIP2.String()
	token := filepath.Join(dir, "relay-token")
	if err := os.WriteFile(token, []byte("test-relay-admission-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	derpMap := filepath.Join(dir, "derp-map.json")
	regions := fmt.Sprintf(`{"regions": [{"id": 2, "code": "second", "url": "http://%s:8443/derp", "stun": ["%s:3478"]}]}`, pub2, pub2)
	if err := os.WriteFile(derpMap, []byte(regions), 0o600); err != nil {
		t.Fatal(err)
	}
	coordURL := "http://" + pub + ":8080"
	coord := lab.Public.Start(filepath.Join(bin, "warren-coordinator"), "serve", "--state-dir", filepath.Join(dir, "coordinator"),
		"--listen", pub+":8080", "--stun-listen", pub+":3478", "--derp-map", derpMap, "--relay-admit-token-file", token,
		"--bootstrap-user", "admin@warren.internal")
	// The bootstrap key is printed on a line of its own, before "Join a node".
	if _, err := coord.WaitFor("Join a node", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	authKey := regexp.MustCompile(`wpk_[a-z0-9]{32}`).FindString(coord.Output())
	relay := lab.Public.Start(filepath.Join(bin, "warren-derp"), "--listen", pub2+":8443", "--stun", pub2+":3478",
		"--key-file", filepath.Join(dir, "derp.key"),
		"--admit-url", coordURL+"/api/v1/relay/admit", "--admit-token-file", token, "--insecure-admit-http")
	if _, err := relay.WaitFor("relay", 30*time.Second); err != nil {
		t.Fatal(err)
	}

	m := &natMesh{t: t, lab: lab, warren: filepath.Join(bin, "warren"), socks: map[string]string{},
		daemons: map[string]*netns.Process{}, args: map[string][]string{}}
	for name, site := range map[string]*natlab.Site{"left": lab.Left, "right": lab.Right} {
		sock := filepath.Join(dir, name+".sock")
		m.socks[name] = sock
		m.args[name] = []string{filepath.Join(bin, "warrend"), "--state-dir", filepath.Join(dir, name), "--socket", sock,
			"--tun", "warren0", "--dns", "off", "--socks5", "", "--log-level", "debug"}
		d := site.Host.Start(m.args[name][0], m.args[name][1:]...)
		m.daemons[name] = d
		if _, err := d.WaitFor("warrend running", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		site.Host.Run(m.warren, "--socket", sock, "up", "--coordinator", coordURL, "--auth-key", authKey, "--hostname", name)
	}
	// Each side sees the other with endpoints and a home region.
	for _, name := range []string{"left", "right"} {
		other := map[string]string{"left": "right", "right": "left"}[name]
		poll.Until(t, 30*time.Second, name+" to see "+other+" with a home relay and endpoints", func() error {
			p, ok := m.peer(name, other)
			if !ok || p.HomeRelay == 0 || len(p.Endpoints) == 0 {
				return fmt.Errorf("last: %+v", p)
			}
			if name == "left" {
				m.rightAddr = p.Addresses[0].Addr()
			} else {
				m.leftAddr = p.Addresses[0].Addr()
			}
			return nil
		})
	}
	return m
}

// site returns the site of a name.
func (m *natMesh) site(name string) *natlab.Site {
	if name == "left" {
		return m.lab.Left
	}
	return m.lab.Right
}

// peer returns what node name's status says about peer.
func (m *natMesh) peer(name, peer string) (localapi.PeerStatus, bool) {
	var st localapi.Status
	out, err := m.site(name).Host.TryRun(m.warren, "--socket", m.socks[name], "status", "--json")
	if err != nil || json.Unmarshal([]byte(out), &st) != nil {
		return localapi.PeerStatus{}, false
	}
	for _, p := range st.Peers {
		if p.Name == peer {
			return p, true
		}
	}
	return localapi.PeerStatus{}, false
}

// path returns node name's path to its peer.
func (m *natMesh) path(name string) string {
	other := map[string]string{"left": "right", "right": "left"}[name]
	p, _ := m.peer(name, other)
	return p.Path
}

// waitPath waits until name's path to its peer starts with prefix.
func (m *natMesh) waitPath(name, prefix string, within time.Duration) time.Duration {
	m.t.Helper()
	return poll.Until(m.t, within, name+": path "+prefix+"…", func() error {
		if p := m.path(name); !strings.HasPrefix(p, prefix) {
			return fmt.Errorf("path %q", p)
		}
		return nil
	})
}

// netcheck runs `warren netcheck --json` on name.
func (m *natMesh) netcheck(name string) *netcheck.Report {
	m.t.Helper()
	var rep localapi.NetcheckReport
	out := m.site(name).Host.Run(m.warren, "--socket", m.socks[name], "netcheck", "--json")
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Network == nil {
		m.t.Fatalf("netcheck on %s: %v\n%s", name, err, out)
	}
	return rep.Network
}

// echoServer serves a TCP echo on the right host's mesh address.
func (m *natMesh) echoServer() netip.AddrPort {
	m.t.Helper()
	addr := netip.AddrPortFrom(m.rightAddr, 7000)
	var ln net.Listener
	if err := m.lab.Right.Host.Do(func() (err error) { ln, err = net.Listen("tcp", addr.String()); return err }); err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	return addr
}

// dial connects from the left host to addr through the mesh.
func (m *natMesh) dial(addr netip.AddrPort) net.Conn {
	m.t.Helper()
	var c net.Conn
	err := m.lab.Left.Host.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", addr.String(), 15*time.Second)
		return err
	})
	if err != nil {
		m.t.Fatalf("dial %s from the left host: %v", addr, err)
	}
	m.t.Cleanup(func() { c.Close() })
	return c
}

// stream echoes chunks through c for d and returns the longest wait for
// one chunk to come back; it fails the test on any error or corruption.
func stream(t *testing.T, c net.Conn, d time.Duration, during func(elapsed time.Duration)) (worst time.Duration, bytes_ int) {
	t.Helper()
	chunk := make([]byte, 16<<10)
	back := make([]byte, len(chunk))
	start := time.Now()
	for time.Since(start) < d {
		_, _ = rand.Read(chunk)
		t0 := time.Now()
		_ = c.SetDeadline(t0.Add(20 * time.Second))
		if _, err := c.Write(chunk); err != nil {
			t.Fatalf("stream write after %v: %v", time.Since(start), err)
		}
		if _, err := io.ReadFull(c, back); err != nil {
			t.Fatalf("stream read after %v: %v", time.Since(start), err)
		}
		if !bytes.Equal(chunk, back) {
			t.Fatal("stream: data corrupted")
		}
		worst = max(worst, time.Since(t0))
		bytes_ += len(chunk)
		if during != nil {
			during(time.Since(start))
		}
	}
	return worst, bytes_
}

// TestNATTraversal runs two warrend behind two NAT routers (natlab) with
// the coordinator and a second relay on the "internet", and checks the
// path each NAT combination gets, that traffic flows on it, and what
// netcheck reports.
func TestNATTraversal(t *testing.T) {
	bin := natMeshBinaries(t)
	for _, tc := range []struct {
		name        string
		left, right natlab.NAT
		path        string // prefix of the path wanted
		within      time.Duration
		udp         bool
		mapping     netcheck.Mapping
	}{
		{"endpoint-independent both", natlab.EndpointIndependent, natlab.EndpointIndependent, "direct ", 3 * time.Second, true, netcheck.MappingEndpointIndependent},
		{"symmetric left", natlab.Symmetric, natlab.EndpointIndependent, "relay ", 3 * time.Second, true, netcheck.MappingEndpointDependent},
		{"UDP blocked left", natlab.BlockUDP, natlab.EndpointIndependent, "relay ", 3 * time.Second, false, ""},
		// Routers that do not firewall inbound UDP: a probe that arrives
		// before the other side's own takes its port mapping there (see
		// natlab.Unfiltered); direct within 5 s all the same.
		{"unfiltered both", natlab.Unfiltered, natlab.Unfiltered, "direct ", 5 * time.Second, true, netcheck.MappingEndpointIndependent},
		{"unfiltered left", natlab.Unfiltered, natlab.EndpointIndependent, "direct ", 5 * time.Second, true, netcheck.MappingEndpointIndependent},
		{"unfiltered right", natlab.EndpointIndependent, natlab.Unfiltered, "direct ", 5 * time.Second, true, netcheck.MappingEndpointIndependent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lab := natlab.New(t, tc.left, tc.right)
			m := startNATMesh(t, bin, lab)
			c := m.dial(m.echoServer())
			start := time.Now()
			stream(t, c, 100*time.Millisecond, nil)
			m.waitPath("left", tc.path, tc.within-time.Since(start))
			t.Logf("left's path %q %v after the first packet", m.path("left"), time.Since(start))
			m.waitPath("right", tc.path, tc.within)
			// The path holds and carries traffic for a while.
			worst, n := stream(t, c, 3*time.Second, nil)
			if p := m.path("left"); !strings.HasPrefix(p, tc.path) {
				t.Fatalf("path changed to %q during the transfer", p)
			}
			t.Logf("%d KiB echoed in 3 s on %q; slowest round trip %v", n>>10, m.path("left"), worst)
			rep := m.netcheck("left")
			if rep.UDP != tc.udp || (tc.mapping != "" && rep.MappingVariesByDest != tc.mapping) {
				t.Fatalf("netcheck: udp %v mapping %q, want %v %q\n%s", rep.UDP, rep.MappingVariesByDest, tc.udp, tc.mapping, rep)
			}
			if tc.udp && rep.PublicEndpoint.Addr() != lab.Left.WANIP {
				t.Fatalf("netcheck public endpoint %v, want the router's WAN address %v", rep.PublicEndpoint, lab.Left.WANIP)
			}
		})
	}
}

// TestNATRebindingMidTransfer moves the left router's UDP mappings to new
// ports in the middle of a transfer over a direct path: the TCP
// connection inside the tunnel must survive, and the path must become
// direct again.
func TestNATRebindingMidTransfer(t *testing.T) {
	bin := natMeshBinaries(t)
	lab := natlab.New(t, natlab.EndpointIndependent, natlab.EndpointIndependent)
	m := startNATMesh(t, bin, lab)
	c := m.dial(m.echoServer())
	stream(t, c, 100*time.Millisecond, nil)
	m.waitPath("left", "direct ", 5*time.Second)
	before := m.path("right")
	rebound := false
	worst, n := stream(t, c, 8*time.Second, func(elapsed time.Duration) {
		if !rebound && elapsed > time.Second {
			rebound = true
			lo, hi, err := lab.Left.Router.Rebind()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("left NAT moved to ports %d-%d", lo, hi)
		}
	})
	t.Logf("transfer survived the rebinding: %d KiB, slowest round trip %v", n>>10, worst)
	if worst > 8*time.Second {
		t.Errorf("the transfer stalled for %v", worst)
	}
	m.waitPath("right", "direct ", 10*time.Second)
	after := m.path("right")
	if after == before {
		t.Fatalf("right's path to left still %q after the rebinding", after)
	}
	t.Logf("right's path to left: %q -> %q", before, after)
}

// natMeshBinaries skips a test that cannot run namespaces (or runs with
// -short) and otherwise builds the binaries a NAT mesh runs, returning
// their directory.
func natMeshBinaries(t *testing.T) string {
	t.Helper()
	netns.Skip(t)
	if testing.Short() {
		t.Skip("skipping: builds and runs the binaries in namespaces")
	}
	return buildtest.Build(t, "warren-coordinator", "warrend", "warren", "warren-derp")
}
