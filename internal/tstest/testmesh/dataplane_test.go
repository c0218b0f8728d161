package testmesh

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/node/controlclient"
)

// meshOf starts n data-plane nodes of one user and waits until each sees
// all the others.
func meshOf(t *testing.T, m *Mesh, names ...string) []*Node {
	t.Helper()
	u := m.User("ann@example.com")
	k := m.AuthKey(registry.AuthKeyRequest{UserID: u.ID, Reusable: true})
	nodes := make([]*Node, len(names))
	for i, name := range names {
		nodes[i] = m.AddNode(name, NodeOptions{AuthKey: k, DataPlane: true})
	}
	for _, n := range nodes {
		must(t, n.WaitFor(wait, func(nm *controlclient.Netmap) bool {
			if len(nm.Peers) != len(names)-1 || n.Engine() == nil {
				return false
			}
			for _, p := range nm.Peers {
				if len(p.Endpoints) == 0 {
					return false
				}
			}
			return true
		}))
	}
	return nodes
}

// addr4 returns a node's mesh IPv4 address.
func addr4(t *testing.T, n *Node) netip.Addr {
	t.Helper()
	for _, p := range n.Netmap().Self.Addresses {
		if p.Addr().Is4() {
			return p.Addr()
		}
	}
	t.Fatalf("%s has no IPv4 address", n.Name)
	return netip.Addr{}
}

// serveHTTP serves a page naming the node on its mesh port 80.
func serveHTTP(t *testing.T, n *Node) {
	t.Helper()
	ln, err := n.Engine().ListenTCP(80)
	must(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s", n.Name)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
}

// get fetches http://<dst>/ from src through the mesh.
func get(t *testing.T, src *Node, dst netip.Addr) (string, error) {
	t.Helper()
	client := &http.Client{Timeout: wait, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil {
				return nil, err
			}
			return src.Engine().DialContext(ctx, "tcp", ap)
		},
	}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://" + netip.AddrPortFrom(dst, 80).String() + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestHTTPThroughTunnels(t *testing.T) {
	m := New(t, Options{})
	nodes := meshOf(t, m, "laptop", "server", "desktop")
	for _, n := range nodes {
		serveHTTP(t, n)
	}
	for _, src := range nodes {
		for _, dst := range nodes {
			if src == dst {
				continue
			}
			body, err := get(t, src, addr4(t, dst))
			if err != nil || body != "hello from "+dst.Name {
				t.Fatalf("%s -> %s: %q, %v", src.Name, dst.Name, body, err)
			}
		}
	}
}

func TestRawTCPBothWays(t *testing.T) {
	m := New(t, Options{})
	nodes := meshOf(t, m, "a", "b")
	a, b := nodes[0], nodes[1]
	ln, err := b.Engine().ListenTCP(7000)
	must(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := a.Engine().DialContext(ctx, "tcp", netip.AddrPortFrom(addr4(t, b), 7000))
	must(t, err)
	defer c.Close()
	s := <-accepted
	if s == nil {
		t.Fatal("no connection accepted")
	}
	defer s.Close()
	payload := strings.Repeat("warren", 100000) // 600 kB each way
	go func() { _, _ = io.WriteString(c, payload) }()
	go func() { _, _ = io.WriteString(s, strings.ToUpper(payload)) }()
	for _, dir := range []struct {
		r    net.Conn
		want string
	}{{s, payload}, {c, strings.ToUpper(payload)}} {
		buf := make([]byte, len(dir.want))
		_ = dir.r.SetReadDeadline(time.Now().Add(wait))
		if _, err := io.ReadFull(dir.r, buf); err != nil || string(buf) != dir.want {
			t.Fatalf("transfer: %v (got %d bytes)", err, len(buf))
		}
	}
}

// TestRemovedPeerIsCut checks that a netmap delta removing a peer stops
// traffic to and from it, both new and established connections.
func TestRemovedPeerIsCut(t *testing.T) {
	m := New(t, Options{})
	nodes := meshOf(t, m, "a", "gone")
	a, gone := nodes[0], nodes[1]
	ln, err := a.Engine().ListenTCP(7001)
	must(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }() // echo
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := gone.Engine().DialContext(ctx, "tcp", netip.AddrPortFrom(addr4(t, a), 7001))
	must(t, err)
	defer c.Close()
	echo := func() error {
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		buf := make([]byte, 4)
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		_, err := io.ReadFull(c, buf)
		return err
	}
	must(t, echo())

	deleted := time.Now()
	must(t, m.Coord.Registry().DeleteNode(context.Background(), Admin, store.NodeID(gone.Netmap().Self.ID)))
	// The node applies a netmap to its data plane before publishing it, so
	// once a's netmap lacks the peer, WireGuard has dropped it too.
	must(t, a.WaitFor(wait, HasPeers()))
	// The README promises "within a second"; the bound is wider so a busy
	// machine does not fail it. The time taken is logged.
	took := time.Since(deleted)
	if took > 5*time.Second {
		t.Fatalf("the removal took %v to reach the data plane; promised within a second", took)
	}
	t.Logf("the removal reached the data plane %v after the delete", took.Round(time.Millisecond))
	if err := echo(); err == nil {
		t.Fatal("established connection still works after its peer was removed")
	}
	dctx, dcancel := context.WithTimeout(context.Background(), time.Second)
	defer dcancel()
	if c2, err := gone.Engine().DialContext(dctx, "tcp", netip.AddrPortFrom(addr4(t, a), 7001)); err == nil {
		c2.Close()
		t.Fatal("new connection from a removed peer succeeded")
	}
}
