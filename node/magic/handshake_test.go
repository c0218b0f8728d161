package magic

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/wire"
)

// TestNothingAtFullTTLBeforeThePeerAsks: until a path is proven, nothing
// goes to a peer's endpoints at full TTL before the peer has asked (a
// call-me-maybe) or the fallback time has passed: not the WireGuard
// handshake, not a ping. A full-TTL packet reaching a router that does not
// firewall, before the peer's own packets have left it, spoils the path
// (see opener.go). Only openers (TTL 2) go at once. Here the peer is not
// on the relay, so it never asks.
func TestNothingAtFullTTLBeforeThePeerAsks(t *testing.T) {
	t.Parallel()
	region := startRelay(t)
	dm := &wire.DERPMap{Regions: []wire.DERPRegion{region}}
	a, b := startNode(t, Config{}), startNode(t, Config{})
	if a.c.lowTTL.Load() == nil {
		t.Skip("no openers on this system")
	}
	rx, pc := listenTTL(t)
	a.c.SetDERPMap(dm)
	a.c.SetPeers([]wire.Node{b.asPeer(region.ID, rx.LocalAddr().(*net.UDPAddr).AddrPort())})
	a.relayUp(region.ID)

	start := time.Now()
	if err := a.c.Bind().Send([][]byte{wgPacket(wgInitiation, 148, 1)}, a.endpoint(b.nodeK.Public())); err != nil {
		t.Fatalf("send: %v", err)
	}
	// The fallback full pings go openerFallback after the discovery round,
	// which started after start: anything read before start+openerFallback/2
	// came before them.
	openers := 0
	buf := make([]byte, maxMessage)
	rx.SetReadDeadline(start.Add(openerFallback / 2))
	for {
		n, cm, _, err := pc.ReadFrom(buf)
		if err != nil {
			break
		}
		if cm == nil || cm.TTL != openerTTL {
			t.Fatalf("a %d-byte packet (type %d) reached the unproven endpoint with TTL %v before the peer asked", n, buf[0], cm)
		}
		openers++
	}
	if openers == 0 {
		t.Fatal("no opener reached the peer's endpoint")
	}
}

// TestUnansweredInitiationResentOnNewPath: an initiation that went
// nowhere (the peer is not on the relay and the netmap's endpoint for it
// is wrong, as behind a NAT) is sent again as soon as a direct path is
// proven, instead of WireGuard's retry 5 s later; an answered one is not.
func TestUnansweredInitiationResentOnNewPath(t *testing.T) {
	t.Parallel()
	for _, answered := range []bool{false, true} {
		region := startRelay(t)
		dm := &wire.DERPMap{Regions: []wire.DERPRegion{region}}
		a, b := startNode(t, Config{}), startNode(t, Config{})
		a.c.SetDERPMap(dm)
		nowhere := netip.MustParseAddrPort("127.0.0.1:9") // discard: nobody answers
		a.c.SetPeers([]wire.Node{b.asPeer(region.ID, nowhere)})
		b.c.SetPeers([]wire.Node{a.asPeer(region.ID, a.addr())})
		a.relayUp(region.ID)
		aKey, bKey := a.nodeK.Public(), b.nodeK.Public()

		init := wgPacket(wgInitiation, 148, 1)
		if err := a.c.Bind().Send([][]byte{init}, a.endpoint(bKey)); err != nil {
			t.Fatalf("send: %v", err)
		}
		if answered {
			a.c.noteWireGuard(a.c.peer(bKey), wgPacket(wgResponse, 92, 2))
		}
		// b pings a (from a packet of its own); a learns b's address, pings
		// it back, and b's pong proves a's path to b.
		if err := b.c.Bind().Send([][]byte{wgPacket(wgData, 64, 3)}, b.endpoint(aKey)); err != nil {
			t.Fatalf("send: %v", err)
		}
		poll.UntilTrue(t, wait, "a's path to b direct", func() bool { return a.c.Path(bKey) == "direct "+b.addr().String() })
		if !answered {
			b.waitPacket(func(d delivered) bool { return bytes.Equal(d.data, init) && d.ep == b.c.peer(aKey).ep })
			continue
		}
		// The answered one must not come: a marker sent after the path is
		// up arrives after anything resent, on the same socket.
		marker := wgPacket(wgData, 64, 4)
		if err := a.c.Bind().Send([][]byte{marker}, a.endpoint(bKey)); err != nil {
			t.Fatalf("send: %v", err)
		}
		b.waitPacket(func(d delivered) bool { return bytes.Equal(d.data, marker) })
		for _, d := range b.packets() {
			if bytes.Equal(d.data, init) {
				t.Fatal("an answered initiation was sent again")
			}
		}
	}
}

// listenTTL is a UDP socket on IPv4 loopback that reports each packet's
// TTL; it is closed when the test ends.
func listenTTL(t *testing.T) (*net.UDPConn, *ipv4.PacketConn) {
	t.Helper()
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rx.Close() })
	pc := ipv4.NewPacketConn(rx)
	if err := pc.SetControlMessage(ipv4.FlagTTL, true); err != nil {
		t.Fatal(err)
	}
	return rx, pc
}
