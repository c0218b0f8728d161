//go:build linux

package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/tstest/netns"
	"github.com/warrenmesh/warren/internal/wire"
)

// openTUNEngine creates an engine in kernel TUN mode inside ns (where the
// TUN device then lives), closed when the test ends.
func openTUNEngine(t *testing.T, ns *netns.Namespace, cfg Config) *Engine {
	t.Helper()
	var e *Engine
	if err := ns.Do(func() (err error) { e, err = New(cfg); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// verifyNoLeaks checks, after every other cleanup of t, that no goroutine
// started during t is left.
func verifyNoLeaks(t *testing.T) {
	t.Helper()
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
}

// TestKernelTUN creates an engine in TUN mode in a fresh namespace and
// checks the device (up, addresses, routes), listening and dialing on the
// mesh addresses through the host stack, and that Close removes the link.
func TestKernelTUN(t *testing.T) {
	netns.Skip(t)
	verifyNoLeaks(t)
	ns := netns.New(t, "engine-tun")
	self4, self6 := netip.MustParsePrefix("100.64.7.1/32"), netip.MustParsePrefix("fd7a:115c:a1e0::7:1/128")
	// "wrntest%d": the kernel picks the name, as macOS always does (utunN),
	// and TUNName reports the name it picked.
	e := openTUNEngine(t, ns, Config{NodeKey: key.NewNode(), Addresses: []netip.Prefix{self4, self6}, TUN: "wrntest%d"})
	if got := e.TUNName(); got != "wrntest0" {
		t.Fatalf("TUNName() = %q, want wrntest0", got)
	}

	err := ns.Do(func() error {
		link, err := netlink.LinkByName("wrntest0")
		if err != nil {
			return err
		}
		if link.Attrs().Flags&net.FlagUp == 0 || link.Attrs().MTU != DefaultMTU {
			return fmt.Errorf("link flags %v, MTU %d; want up, %d", link.Attrs().Flags, link.Attrs().MTU, DefaultMTU)
		}
		addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		var got []string
		for _, a := range addrs {
			got = append(got, a.IPNet.String())
		}
		if !slices.Contains(got, self4.String()) || !slices.Contains(got, self6.String()) {
			return fmt.Errorf("addresses %v; want %s and %s", got, self4, self6)
		}
		routes, err := netlink.RouteList(link, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		got = got[:0]
		for _, r := range routes {
			if r.Dst != nil {
				got = append(got, fmt.Sprintf("%s src %s", r.Dst, r.Src))
			}
		}
		for _, want := range []string{"100.64.0.0/10 src 100.64.7.1", "fd7a:115c:a1e0::/48 src fd7a:115c:a1e0::7:1"} {
			if !slices.Contains(got, want) {
				return fmt.Errorf("routes %v; want %q", got, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = e.ListenTCP(0); return err }); err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).AddrPort().Port()
	go serveEcho(ln)
	for _, a := range []netip.Addr{self4.Addr(), self6.Addr()} {
		var c net.Conn
		err := ns.Do(func() (err error) {
			c, err = e.DialContext(t.Context(), "tcp", netip.AddrPortFrom(a, port))
			return err
		})
		if err != nil {
			t.Fatalf("dial %s: %v", a, err)
		}
		echo(t, c, []byte("hello "+a.String()))
	}
	if _, err := e.DialContext(t.Context(), "tcp", netip.MustParseAddrPort("192.0.2.1:80")); err == nil || !strings.Contains(err.Error(), "not a mesh address") {
		t.Errorf("dial outside the mesh = %v; want refused", err)
	}
	if err := ln.Close(); err != nil {
		t.Error(err)
	}

	e.Close()
	err = ns.Do(func() error {
		_, err := netlink.LinkByName("wrntest0")
		if _, ok := errors.AsType[netlink.LinkNotFoundError](err); !ok {
			return fmt.Errorf("after Close, looking up the link: %v; want link not found", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// serveEcho echoes every connection to ln until ln is closed.
func serveEcho(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() { io.Copy(c, c); c.Close() }()
	}
}

// echo writes msg on c, half-closes it and wants the same bytes back.
func echo(t *testing.T, c net.Conn, msg []byte) {
	t.Helper()
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		errc <- err
	}()
	got, err := io.ReadAll(c)
	if werr := <-errc; werr != nil {
		t.Fatalf("write: %v", werr)
	}
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo: got %d bytes (%v); want the %d sent back", len(got), err, len(msg))
	}
}

// TestKernelTUNMesh joins two TUN-mode engines in two namespaces over a veth
// pair, sends a megabyte through WireGuard each way (large enough for the
// kernel's segmentation offloads to be used) and pings across.
func TestKernelTUNMesh(t *testing.T) {
	netns.Skip(t)
	verifyNoLeaks(t)
	nsA, nsB := netns.New(t, "engine-a"), netns.New(t, "engine-b")
	netns.Connect(nsA, nsB, "10.203.0.1/24", "10.203.0.2/24")
	type node struct {
		ns   *netns.Namespace
		key  key.NodePrivate
		addr []netip.Prefix
		lan  netip.Addr
		e    *Engine
	}
	a := &node{ns: nsA, key: key.NewNode(), lan: netip.MustParseAddr("10.203.0.1"),
		addr: []netip.Prefix{netip.MustParsePrefix("100.64.8.1/32"), netip.MustParsePrefix("fd7a:115c:a1e0::8:1/128")}}
	b := &node{ns: nsB, key: key.NewNode(), lan: netip.MustParseAddr("10.203.0.2"),
		addr: []netip.Prefix{netip.MustParsePrefix("100.64.8.2/32"), netip.MustParsePrefix("fd7a:115c:a1e0::8:2/128")}}
	for _, n := range []*node{a, b} {
		n.e = openTUNEngine(t, n.ns, Config{NodeKey: n.key, Addresses: n.addr, TUN: "wrn0"})
	}
	allowMesh := []wire.FilterRule{{
		SrcPrefixes: meshPrefixes,
		DstPorts:    []wire.PortRange{{Prefix: meshPrefixes[0], Last: 65535}, {Prefix: meshPrefixes[1], Last: 65535}},
	}}
	for _, pair := range [][2]*node{{a, b}, {b, a}} {
		self, peer := pair[0], pair[1]
		err := self.e.SetNetmap([]wire.Node{{NodeKey: peer.key.Public(), Addresses: peer.addr,
			Endpoints: []netip.AddrPort{netip.AddrPortFrom(peer.lan, peer.e.Port())}}}, allowMesh)
		if err != nil {
			t.Fatal(err)
		}
	}

	var ln net.Listener
	if err := nsB.Do(func() (err error) { ln, err = b.e.ListenTCP(7100); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go serveEcho(ln)
	msg := make([]byte, 1<<20)
	rand.Read(msg)
	for _, p := range b.addr {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		var c net.Conn
		err := nsA.Do(func() (err error) {
			c, err = a.e.DialContext(ctx, "tcp", netip.AddrPortFrom(p.Addr(), 7100))
			return err
		})
		cancel()
		if err != nil {
			t.Fatalf("dial %s through the tunnel: %v", p.Addr(), err)
		}
		echo(t, c, msg)
	}
	for _, p := range b.addr {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		err := nsA.Do(func() error { _, err := a.e.Ping(ctx, p.Addr()); return err })
		cancel()
		if err != nil {
			t.Errorf("ping %s through the tunnel: %v", p.Addr(), err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	err := nsA.Do(func() error { _, err := a.e.Ping(ctx, netip.MustParseAddr("100.64.8.99")); return err })
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ping to an address nobody has = %v; want the context's deadline", err)
	}
	st, err := a.e.Status()
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].LastHandshake.IsZero() || st[0].TxBytes < uint64(2*len(msg)) {
		t.Errorf("status = %+v; want one peer with a handshake and at least %d bytes sent", st, 2*len(msg))
	}
}

// TestTUNError checks that failures to create or configure the device say
// what to do.
func TestTUNError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{unix.EPERM, "needs root"},
		{unix.EACCES, "needs root"},
		{unix.EBUSY, "pick another --tun name"},
		{unix.EINVAL, "longer than 15 characters"},
		{unix.ENODEV, "create: no such device"},
	} {
		err := tunError("create", tc.err)
		if !strings.Contains(err.Error(), tc.want) || !errors.Is(err, tc.err) {
			t.Errorf("tunError(%v) = %q; want it to wrap the error and say %q", tc.err, err, tc.want)
		}
	}
}

// TestNoTUNDevice checks the advice when the TUN clone device is missing.
func TestNoTUNDevice(t *testing.T) {
	old := tunClonePath
	tunClonePath = "/nonexistent/net/tun"
	defer func() { tunClonePath = old }()
	_, err := New(Config{NodeKey: key.NewNode(), Addresses: []netip.Prefix{netip.MustParsePrefix("100.64.9.1/32")}, TUN: "wrntest9"})
	if err == nil || !strings.Contains(err.Error(), "does not exist: load the tun module") {
		t.Errorf("New without a TUN clone device = %v; want advice to load the tun module", err)
	}
}

// TestICMPChecksum checks the checksum against a known echo request.
func TestICMPChecksum(t *testing.T) {
	// Echo request, identifier 1, sequence 1, payload "abcd"; checksum
	// computed by hand: 0x0800+0x0001+0x0001+0x6162+0x6364 = 0xccc8.
	req := []byte{8, 0, 0, 0, 0, 1, 0, 1, 'a', 'b', 'c', 'd'}
	if got, want := icmpChecksum(req), ^uint16(0xccc8); got != want {
		t.Errorf("checksum = %#04x; want %#04x", got, want)
	}
	if got := icmpChecksum([]byte{0xff}); got != ^uint16(0xff00) {
		t.Errorf("odd-length checksum = %#04x", got)
	}
}

// TestMultiListener checks the listener on several addresses: one port for
// all, connections from each, and Close ending its goroutines.
func TestMultiListener(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	addrs := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	if ln, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		ln.Close()
		addrs = append(addrs, netip.IPv6Loopback())
	}
	ln, err := listenAll(addrs, 0)
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).AddrPort().Port()
	for _, a := range addrs {
		c, err := net.Dial("tcp", netip.AddrPortFrom(a, port).String())
		if err != nil {
			t.Fatalf("dial %s: %v", a, err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if got := s.LocalAddr().(*net.TCPAddr).AddrPort(); got != netip.AddrPortFrom(a, port) {
			t.Errorf("accepted on %s; want %s", got, netip.AddrPortFrom(a, port))
		}
		s.Close()
		c.Close()
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close = %v; want net.ErrClosed", err)
	}
	if _, err := listenAll(nil, 0); err == nil {
		t.Error("listening with no mesh address succeeded")
	}
}
