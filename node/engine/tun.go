package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"golang.zx2c4.com/wireguard/tun"
)

// meshPrefixes are the mesh's address ranges: the kernel TUN device gets a
// route for each, and it dials nothing outside them.
var meshPrefixes = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("fd7a:115c:a1e0::/48"),
}

func isMeshAddr(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range meshPrefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// kernelDevice is a kernel TUN device (opened by openKernelTUN): the host's
// TCP/IP stack carries local traffic, so dialing and listening go through
// ordinary sockets.
type kernelDevice struct {
	tun.Device
	// name is the device's name as the OS gave it (on macOS "utunN",
	// whatever --tun said).
	name string
	// addrs are the node's mesh addresses, as assigned to the device.
	addrs []netip.Addr
}

// tunName returns the device's name as the OS gave it.
func (d *kernelDevice) tunName() string { return d.name }

// DialContext dials a mesh address with the host stack; the device's routes
// take the connection into the tunnel with the node's mesh address as its
// source. Addresses outside the mesh ranges are refused, as in userspace
// mode, so a caller never leaves the mesh by accident.
func (d *kernelDevice) DialContext(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6":
	default:
		return nil, fmt.Errorf("engine: unsupported network %q", network)
	}
	if !isMeshAddr(addr.Addr()) {
		return nil, fmt.Errorf("engine: dial %s: not a mesh address (want 100.64.0.0/10 or fd7a:115c:a1e0::/48)", addr)
	}
	var d0 net.Dialer
	return d0.DialContext(ctx, network, addr.String())
}

// ListenTCP listens on port on every mesh address of the node (its IPv4
// and its IPv6 address) and merges them into one listener, like the
// userspace stack's listener on the unspecified address.
//
// It never listens on the unspecified address: that would expose the
// service on every interface of the host, around the mesh's filter. Port 0
// picks a free port on the first address and uses the same on the others.
func (d *kernelDevice) ListenTCP(port uint16) (net.Listener, error) {
	const attempts = 8 // for port 0, when the picked port is taken on a later address
	var err error
	for range attempts {
		var ln net.Listener
		ln, err = listenAll(d.addrs, port)
		if err == nil || port != 0 || !errors.Is(err, syscall.EADDRINUSE) {
			return ln, err
		}
	}
	return nil, err
}

func listenAll(addrs []netip.Addr, port uint16) (net.Listener, error) {
	if len(addrs) == 0 {
		return nil, errors.New("engine: listen: the node has no mesh address")
	}
	var lns []net.Listener
	closeAll := func() {
		for _, ln := range lns {
			ln.Close()
		}
	}
	for _, a := range addrs {
		ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, port)))
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("engine: listen on %s: %w", a, err)
		}
		lns = append(lns, ln)
		port = ln.Addr().(*net.TCPAddr).AddrPort().Port()
	}
	if len(lns) == 1 {
		return lns[0], nil
	}
	return newMultiListener(lns), nil
}

// multiListener accepts from several listeners (one per mesh address). Its
// Addr is the first one's. Close closes them all and waits for the
// goroutines it started.
type multiListener struct {
	lns   []net.Listener
	conns chan net.Conn
	errs  chan error
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

func newMultiListener(lns []net.Listener) *multiListener {
	m := &multiListener{lns: lns, conns: make(chan net.Conn), errs: make(chan error), done: make(chan struct{})}
	m.wg.Add(len(lns))
	for _, ln := range lns {
		go m.serve(ln)
	}
	return m
}

// serve hands every accepted connection, and every error short of the
// listener's end, to Accept.
func (m *multiListener) serve(ln net.Listener) {
	defer m.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case m.errs <- err:
				continue
			case <-m.done:
				return
			}
		}
		select {
		case m.conns <- c:
		case <-m.done:
			c.Close()
			return
		}
	}
}

// Accept implements net.Listener.
func (m *multiListener) Accept() (net.Conn, error) {
	select {
	case c := <-m.conns:
		return c, nil
	case err := <-m.errs:
		return nil, err
	case <-m.done:
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: m.Addr(), Err: net.ErrClosed}
	}
}

// Close implements net.Listener.
func (m *multiListener) Close() error {
	var err error
	m.once.Do(func() {
		close(m.done)
		for _, ln := range m.lns {
			if cerr := ln.Close(); cerr != nil && err == nil {
				err = cerr
			}
		}
		m.wg.Wait()
	})
	return err
}

// Addr implements net.Listener.
func (m *multiListener) Addr() net.Addr { return m.lns[0].Addr() }
