package magic

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestLowTTLSendsFromTheBindSocket checks the opener's primitive: it finds
// the bind's socket, its packets leave from the bind's port with the TTL
// asked for while the bind's own packets keep the normal TTL, and closing
// the bind releases the port.
func TestLowTTLSendsFromTheBindSocket(t *testing.T) {
	n := startNode(t, Config{})
	l := n.c.lowTTL.Load()
	if l == nil {
		t.Fatal("no low-TTL sender for the open bind")
	}
	rx, pc := listenTTL(t)
	dst := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	recv := func() (int, uint16) {
		t.Helper()
		rx.SetReadDeadline(time.Now().Add(wait))
		buf := make([]byte, 100)
		_, cm, from, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		if cm == nil {
			t.Fatal("no control message with the TTL")
		}
		return cm.TTL, uint16(from.(*net.UDPAddr).Port)
	}

	if err := l.send([]byte("opener"), dst, openerTTL); err != nil {
		t.Fatal(err)
	}
	ttl, port := recv()
	if ttl != openerTTL || port != n.port {
		t.Fatalf("opener arrived with TTL %d from port %d, want TTL %d from the bind's port %d", ttl, port, openerTTL, n.port)
	}
	if err := n.c.sendUDP([]byte("normal"), dst); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := recv(); ttl <= openerTTL {
		t.Fatalf("a packet the bind sent after the opener has TTL %d: the opener changed the socket's TTL", ttl)
	}
	if err := l.send([]byte("v6"), netip.MustParseAddrPort("[::1]:9"), openerTTL); err == nil {
		t.Fatal("a low-TTL send to an IPv6 address succeeded")
	}

	if err := n.c.Bind().Close(); err != nil {
		t.Fatal(err)
	}
	if n.c.lowTTL.Load() != nil {
		t.Fatal("the low-TTL sender outlives the bind")
	}
	if err := l.send([]byte("late"), dst, openerTTL); err == nil {
		t.Fatal("a send after close succeeded")
	}
	again, err := net.ListenUDP("udp4", &net.UDPAddr{Port: int(n.port)})
	if err != nil {
		t.Fatalf("the bind's port is still held after close: %v", err)
	}
	again.Close()
}
