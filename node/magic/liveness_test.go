package magic

import (
	"net/netip"
	"testing"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/disco"
)

// TestUnansweredBookkeeping feeds a Conn packets to and from a peer and
// checks whether it counts the peer as owing an answer.
func TestUnansweredBookkeeping(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		msgs []bool // true: sent to the peer; false: WireGuard received from it
		want bool   // waiting for an answer
	}{
		{"nothing yet", nil, false},
		{"sent", []bool{true}, true},
		{"sent, answered", []bool{true, false}, false},
		{"sent, answered, sent again", []bool{true, false, true}, true},
		{"only received", []bool{false}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newBareConn(t, Config{})
			pk := key.NewNode().Public()
			c.SetPeers([]wire.Node{{NodeKey: pk, DiscoKey: key.NewDisco().Public(),
				Endpoints: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:41641")}}})
			p := c.peer(pk)
			for _, out := range tc.msgs {
				if out {
					_ = c.Bind().Send([][]byte{wgPacket(4, 64, 0)}, p.ep)
				} else {
					c.noteWireGuard(p, wgPacket(4, 64, 0))
				}
			}
			// The clock moves on: a wait that started shows as more than 0.
			poll.UntilTrue(t, wait, "the clock moves", func() bool { return c.now() > p.unanswered.Load() || !tc.want })
			if got := c.Unanswered(pk) > 0; got != tc.want {
				t.Errorf("waiting = %v (%v), want %v", got, c.Unanswered(pk), tc.want)
			}
		})
	}
	c := newBareConn(t, Config{})
	if d := c.Unanswered(key.NewNode().Public()); d != 0 {
		t.Errorf("an unknown peer waits %v, want 0", d)
	}
}

// TestUnansweredProbe: over a proven direct path, traffic that goes one
// way only (the peer's WireGuard sends nothing back) is answered by the
// peer's pong to a ping sent out of turn, so the wait ends without any
// WireGuard packet from the peer; and when the peer goes away, the wait
// only grows.
func TestUnansweredProbe(t *testing.T) {
	t.Parallel()
	a, b := startNode(t, Config{}), startNode(t, Config{})
	a.c.SetPeers([]wire.Node{b.asPeer(0, b.addr())})
	b.c.SetPeers([]wire.Node{a.asPeer(0, a.addr())})
	bKey := b.nodeK.Public()
	_ = a.c.Bind().Send([][]byte{wgPacket(1, 148, 1)}, a.endpoint(bKey))
	poll.UntilTrue(t, wait, "a direct path", func() bool { return a.c.Path(bKey) == "direct "+b.addr().String() })

	// One-way data: only disco can answer it.
	pb := a.c.peer(bKey)
	_ = a.c.Bind().Send([][]byte{wgPacket(4, 64, 2)}, a.endpoint(bKey))
	start := pb.unanswered.Load()
	if start == notWaiting {
		t.Fatal("a sent data but does not wait for an answer")
	}
	poll.UntilTrue(t, wait, "the probe's pong ends the wait", func() bool { return pb.unanswered.Load() != start })

	b.close()
	_ = a.c.Bind().Send([][]byte{wgPacket(4, 64, 3)}, a.endpoint(bKey))
	poll.UntilTrue(t, wait, "the wait for a gone peer passes probeAfter", func() bool { return a.c.Unanswered(bKey) > 2*probeAfter })
}

// TestDiscoFromPeerIsAnAnswer: an authenticated disco message from the
// peer ends a wait.
func TestDiscoFromPeerIsAnAnswer(t *testing.T) {
	t.Parallel()
	h := newHostileSetup(t)
	p := h.p
	p.sent(h.n.c.now())
	s := listenUDP(t)
	tx := disco.NewTxID()
	s.send(h.n.addr(), h.ping(tx))
	if _, err := s.waitDisco(h.sk, pongTo(tx)); err != nil {
		t.Fatal(err)
	}
	if u := p.unanswered.Load(); u != notWaiting {
		t.Errorf("still waiting after the peer's ping")
	}
}
