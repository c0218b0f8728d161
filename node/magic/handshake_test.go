package magic

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/warrenmesh/warren/internal/wire"
)

// TestHandshakeAlsoGoesToEndpoints: with no proven path, a handshake
// initiation goes through the relay and also to the peer's endpoints, so
// it is not lost when the peer is not (yet) on the relay: the relay drops
// it, and WireGuard would try again only 5 s later. This was the 5 s
// first connection seen in about half of all fresh meshes. Data packets
// still go through the relay alone.
func TestHandshakeAlsoGoesToEndpoints(t *testing.T) {
	t.Parallel()
	region := startRelay(t)
	dm := &wire.DERPMap{Regions: []wire.DERPRegion{region}}
	a, b := startNode(t, Config{}), startNode(t, Config{})
	a.c.SetDERPMap(dm) // b never connects to the relay
	a.c.SetPeers([]wire.Node{b.asPeer(region.ID, b.addr())})
	b.c.SetPeers([]wire.Node{a.asPeer(region.ID, a.addr())})
	a.relayUp(region.ID)
	bKey, aKey := b.nodeK.Public(), a.nodeK.Public()

	data := wgPacket(wgData, 64, 9)
	init := wgPacket(wgInitiation, 148, 1)
	if err := a.c.Bind().Send([][]byte{data, init}, a.endpoint(bKey)); err != nil {
		t.Fatalf("send: %v", err)
	}
	b.waitPacket(func(d delivered) bool { return bytes.Equal(d.data, init) && d.ep == b.c.peer(aKey).ep })
	for _, d := range b.packets() {
		if bytes.Equal(d.data, data) {
			t.Fatal("a data packet went to the endpoints of a peer without a proven path")
		}
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
		eventually(t, wait, "a's path to b direct", func() bool { return a.c.Path(bKey) == "direct "+b.addr().String() })
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
