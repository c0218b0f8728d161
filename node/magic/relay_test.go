package magic

import (
	"bytes"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/warrenmesh/warren/derp"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/wire"
)

// startRelay runs an admit-all relay for the test and returns its region
// (ID 1, code "tst", no STUN: netcheck measures it over HTTP).
func startRelay(t *testing.T) wire.DERPRegion {
	t.Helper()
	srv, err := derp.NewServer(derp.ServerConfig{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { srv.Close(); hs.Close() }) // after the nodes' cleanups: they were started later
	return wire.DERPRegion{ID: 1, Code: "tst", URL: hs.URL + "/derp"}
}

// relayUp waits until n's connection to the region is up.
func (n *node) relayUp(region int) {
	n.t.Helper()
	poll.UntilTrue(n.t, wait, "relay connection up", func() bool { return n.c.relays.status()[region] })
}

// TestRelayOnly: with direct paths disabled, packets travel through the
// peer's home relay and arrive labelled with the sender's endpoint.
func TestRelayOnly(t *testing.T) {
	t.Parallel()
	region := startRelay(t)
	dm := &wire.DERPMap{Regions: []wire.DERPRegion{region}}
	a, b := startNode(t, Config{RelayOnly: true}), startNode(t, Config{RelayOnly: true})
	a.c.SetDERPMap(dm)
	b.c.SetDERPMap(dm)
	a.c.SetPeers([]wire.Node{b.asPeer(region.ID, b.addr())})
	b.c.SetPeers([]wire.Node{a.asPeer(region.ID, a.addr())})
	aKey, bKey := a.nodeK.Public(), b.nodeK.Public()
	for _, tc := range []struct {
		n    *node
		peer *node
	}{{a, b}, {b, a}} {
		if got, want := tc.n.c.Path(tc.peer.nodeK.Public()), "relay "+region.Code; got != want {
			t.Errorf("path %q, want %q", got, want)
		}
	}

	// The relay drops packets for a node not connected yet; once b is
	// connected, a's packet (queued until a's own connection is up) gets
	// through.
	b.relayUp(region.ID)
	ab := wgPacket(1, 148, 0xab)
	if err := a.c.Bind().Send([][]byte{ab}, a.endpoint(bKey)); err != nil {
		t.Fatalf("send: %v", err)
	}
	d := b.waitPacket(func(d delivered) bool { return bytes.Equal(d.data, ab) })
	if ep, ok := d.ep.(*Endpoint); !ok || ep.Key != aKey || ep != b.c.peer(aKey).ep {
		t.Errorf("b got a's packet from %v, want a's endpoint", d.ep.DstToString())
	}

	// And back, in a batch.
	ba1, ba2 := wgPacket(2, 92, 1), wgPacket(4, 1200, 2)
	if err := b.c.Bind().Send([][]byte{ba1, ba2}, b.endpoint(aKey)); err != nil {
		t.Fatalf("send: %v", err)
	}
	for _, want := range [][]byte{ba1, ba2} {
		d := a.waitPacket(func(d delivered) bool { return bytes.Equal(d.data, want) })
		if d.ep != a.c.peer(bKey).ep {
			t.Errorf("a got b's packet from %v, want b's endpoint", d.ep.DstToString())
		}
	}

	for _, tc := range []struct {
		n    *node
		peer *node
	}{{a, b}, {b, a}} {
		k := tc.peer.nodeK.Public()
		if got, want := tc.n.c.Path(k), "relay "+region.Code; got != want {
			t.Errorf("path %q, want %q", got, want)
		}
		if info, ok := tc.n.c.PathInfo(k); !ok || info.Relay != region.Code || info.Direct.IsValid() || info.PeerHome != region.ID {
			t.Errorf("PathInfo = %+v, %v; want relay %s, peer home %d", info, ok, region.Code, region.ID)
		}
	}
	poll.UntilTrue(t, wait, "home region chosen", func() bool { return a.c.HomeRegion() == region.ID })
}

// TestRelayThenDirect: peers that know no endpoints of each other start on
// the relay; the first packet makes the sender send a call-me-maybe with
// its endpoints through the relay, the receiver pings them, and both
// sides end up on the direct path.
func TestRelayThenDirect(t *testing.T) {
	t.Parallel()
	region := startRelay(t)
	dm := &wire.DERPMap{Regions: []wire.DERPRegion{region}}
	loopback := func(port uint16) []netip.AddrPort {
		return []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)}
	}
	a, b := startNode(t, Config{LocalEndpoints: loopback}), startNode(t, Config{LocalEndpoints: loopback})
	a.c.SetDERPMap(dm)
	b.c.SetDERPMap(dm)
	a.c.SetPeers([]wire.Node{b.asPeer(region.ID)})
	b.c.SetPeers([]wire.Node{a.asPeer(region.ID)})
	aKey, bKey := a.nodeK.Public(), b.nodeK.Public()
	b.relayUp(region.ID)
	poll.UntilTrue(t, wait, "a advertises its endpoint", func() bool {
		eps, _ := a.c.Advertised()
		return len(eps) == 1 && eps[0] == a.addr()
	})
	if got, want := a.c.Path(bKey), "relay "+region.Code; got != want {
		t.Errorf("path before any packet: %q, want %q", got, want)
	}

	first := wgPacket(1, 148, 1)
	if err := a.c.Bind().Send([][]byte{first}, a.endpoint(bKey)); err != nil {
		t.Fatalf("send: %v", err)
	}
	b.waitPacket(func(d delivered) bool { return bytes.Equal(d.data, first) && d.ep == b.c.peer(aKey).ep })
	poll.UntilTrue(t, wait, "a's path direct", func() bool { return a.c.Path(bKey) == "direct "+b.addr().String() })
	poll.UntilTrue(t, wait, "b's path direct", func() bool { return b.c.Path(aKey) == "direct "+a.addr().String() })

	// b learned a's address from its ping, so a's packets over UDP are
	// a's.
	second := wgPacket(4, 64, 2)
	if err := a.c.Bind().Send([][]byte{second}, a.endpoint(bKey)); err != nil {
		t.Fatalf("send: %v", err)
	}
	b.waitPacket(func(d delivered) bool { return bytes.Equal(d.data, second) && d.ep == b.c.peer(aKey).ep })
}

// TestStalePathAlsoUsesRelay: once a heartbeat's pong is overdue on a
// still-trusted direct path, packets go both to that path and through the
// relay, so traffic survives a path that died (UDP blocked mid-session)
// without waiting for the trust to run out.
func TestStalePathAlsoUsesRelay(t *testing.T) {
	t.Parallel()
	region := startRelay(t)
	dm := &wire.DERPMap{Regions: []wire.DERPRegion{region}}
	a, b := startNode(t, Config{}), startNode(t, Config{})
	a.c.SetDERPMap(dm)
	b.c.SetDERPMap(dm)
	sink := listenUDP(t) // the direct path: it leads nowhere
	a.c.SetPeers([]wire.Node{b.asPeer(region.ID, sink.addr())})
	b.c.SetPeers([]wire.Node{a.asPeer(region.ID, a.addr())})
	a.relayUp(region.ID)
	b.relayUp(region.ID)
	p := a.c.peer(b.nodeK.Public())
	ep, err := a.c.udp.ParseEndpoint(sink.addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p.best.Store(&bestAddr{addr: sink.addr(), ep: ep, rtt: time.Millisecond})
	// Trusted for one more second, but the last pong was 4 s ago.
	p.trustUntil.Store(a.c.now() + int64(time.Second))
	if _, ok := p.trusted(a.c.now()); !ok || !p.stale(a.c.now()) {
		t.Fatal("setup: the path should be trusted and stale")
	}
	pkt := wgPacket(4, 64, 0x5a)
	if err := a.c.Bind().Send([][]byte{pkt}, a.endpoint(b.nodeK.Public())); err != nil {
		t.Fatalf("send: %v", err)
	}
	b.waitPacket(func(d delivered) bool {
		e, ok := d.ep.(*Endpoint)
		return ok && e.Key == a.nodeK.Public() && bytes.Equal(d.data, pkt)
	})
	_ = sink.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 128)
	n, _, err := sink.ReadFromUDPAddrPort(buf)
	if err != nil || !bytes.Equal(buf[:n], pkt) {
		t.Fatalf("the direct path did not get the packet too: %v", err)
	}
}
