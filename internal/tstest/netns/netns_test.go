package netns_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/netns"
)

// TestVeth joins two namespaces and checks that each reaches the other
// over IPv4 and IPv6: by ping when it is installed, and always by TCP from
// sockets made inside the namespaces with Do.
func TestVeth(t *testing.T) {
	netns.Skip(t)
	a, b := netns.New(t, "veth-a"), netns.New(t, "veth-b")
	aDev, bDev := netns.Connect(a, b, "10.200.0.1/24", "10.200.0.2/24")
	if aDev != "veth0" || bDev != "veth0" {
		t.Errorf("devices = %s, %s; want veth0 in each namespace", aDev, bDev)
	}
	a.AddAddr(aDev, "fd00:200::1/64")
	b.AddAddr(bDev, "fd00:200::2/64")

	t.Run("ping", func(t *testing.T) {
		if _, err := exec.LookPath("ping"); err != nil {
			t.Skip("skipping: ping is not installed (apt-get install iputils-ping); the TCP check covers reachability")
		}
		a.Run("ping", "-c", "1", "-W", "5", "10.200.0.2")
		b.Run("ping", "-c", "1", "-W", "5", "fd00:200::1")
	})
	for _, addr := range []string{"10.200.0.2:7000", "[fd00:200::2]:7000"} {
		t.Run("tcp "+addr, func(t *testing.T) {
			echoAcross(t, a, b, addr)
		})
	}
}

// echoAcross listens on addr in dst, dials it from src and checks an echo.
func echoAcross(t *testing.T, src, dst *netns.Namespace, addr string) {
	t.Helper()
	var ln net.Listener
	if err := dst.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		_, err = io.Copy(c, c)
		served <- err
	}()
	var c net.Conn
	if err := src.Do(func() (err error) { c, err = net.DialTimeout("tcp", addr, 5*time.Second); return err }); err != nil {
		t.Fatal(err)
	}
	msg := []byte("across the veth")
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo = %q, %v; want %q", got, err, msg)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

// TestDoStaysInside checks that Do runs in the namespace and leaves the
// caller's namespace alone: the new namespace has only lo.
func TestDoStaysInside(t *testing.T) {
	netns.Skip(t)
	n := netns.New(t, "do")
	var inside []net.Interface
	if err := n.Do(func() (err error) { inside, err = net.Interfaces(); return err }); err != nil {
		t.Fatal(err)
	}
	if len(inside) != 1 || inside[0].Name != "lo" {
		t.Errorf("interfaces inside = %v; want only lo", inside)
	}
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	for range 4 { // every Do thread must have come back
		var in string
		n.Do(func() (err error) { in, err = os.Readlink("/proc/thread-self/ns/net"); return err })
		if after, _ := os.Readlink("/proc/thread-self/ns/net"); after != self || in == self {
			t.Fatalf("namespaces: process %s, inside Do %s, after Do %s", self, in, after)
		}
	}
}

// TestRouter routes between two namespaces through a third with
// forwarding on, the shape NAT tests build on.
func TestRouter(t *testing.T) {
	netns.Skip(t)
	left, router, right := netns.New(t, "left"), netns.New(t, "router"), netns.New(t, "right")
	netns.Connect(left, router, "10.201.1.2/24", "10.201.1.1/24")
	netns.Connect(router, right, "10.201.2.1/24", "10.201.2.2/24")
	left.Run("ip", "route", "add", "default", "via", "10.201.1.1")
	right.Run("ip", "route", "add", "default", "via", "10.201.2.1")
	if _, err := left.TryRun("ip", "route", "get", "10.201.2.2"); err != nil {
		t.Fatal(err)
	}
	router.EnableForwarding()
	echoAcross(t, left, right, "10.201.2.2:7001")
}

// TestProcess starts a process in a namespace, waits for its output and
// stops it; a process that exits on its own reports how.
func TestProcess(t *testing.T) {
	netns.Skip(t)
	n := netns.New(t, "proc")
	p := n.Start("sh", "-c", "ip -o link show lo; echo ready; exec sleep 60")
	line, err := p.WaitFor("ready", 10*time.Second)
	if err != nil || line != "ready" {
		t.Fatalf("WaitFor = %q, %v", line, err)
	}
	if !strings.Contains(p.Output(), "lo:") {
		t.Errorf("output %q lacks the namespace's lo", p.Output())
	}
	if err := p.Stop(); err != nil {
		t.Errorf("Stop = %v; want nil for a process ended by Stop", err)
	}

	q := n.Start("sh", "-c", "echo bye; exit 3")
	if _, err := q.WaitFor("never printed", 10*time.Second); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("WaitFor on an exited process = %v; want an error saying it exited", err)
	}
	var ee *exec.ExitError
	if err := q.Stop(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("Stop = %v; want exit status 3", err)
	}
}

// TestCleanup checks that a namespace, its links and its processes are
// gone once the test that made them has ended.
func TestCleanup(t *testing.T) {
	netns.Skip(t)
	var name string
	t.Run("inner", func(t *testing.T) {
		n := netns.New(t, "cleanup")
		name = n.Name
		netns.Connect(n, netns.New(t, "cleanup-peer"), "10.202.0.1/24", "")
		n.Start("sleep", "60")
		if _, err := os.Stat(filepath.Join("/var/run/netns", name)); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := os.Stat(filepath.Join("/var/run/netns", name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace %s still exists after its test (stat: %v)", name, err)
	}
	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), name) {
		t.Errorf("ip netns list still shows %s", name)
	}
}
