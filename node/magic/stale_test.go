package magic

import (
	"net/netip"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/wire"
)

// TestStaleSessionReported feeds a Conn WireGuard messages to and from a
// peer and checks whether it reports the peer as using a session from
// before this Conn started (data from it with no handshake since), which
// makes the engine start a handshake at once after a restart.
func TestStaleSessionReported(t *testing.T) {
	t.Parallel()
	type msg struct {
		out bool // sent to the peer (else received from it)
		typ byte // WireGuard message type
	}
	for _, tc := range []struct {
		name string
		msgs []msg
		want int // reports for the peer
	}{
		{"data from the peer first", []msg{{false, 4}}, 1},
		{"more data within a second: one report", []msg{{false, 4}, {false, 4}, {false, 4}}, 1},
		{"a cookie reply is no handshake", []msg{{false, 3}, {false, 4}}, 1},
		{"initiation received, then data", []msg{{false, 1}, {false, 4}}, 0},
		{"response received, then data", []msg{{false, 2}, {false, 4}}, 0},
		{"initiation sent, then data", []msg{{true, 1}, {false, 4}}, 0},
		{"response sent, then data", []msg{{true, 2}, {false, 4}}, 0},
		{"only data sent", []msg{{true, 4}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reports := make(chan key.NodePublic, 16)
			c := newBareConn(t, Config{OnStaleSession: func(k key.NodePublic) { reports <- k }})
			pk, control := key.NewNode().Public(), key.NewNode().Public()
			ep := netip.MustParseAddrPort("192.0.2.1:41641")
			c.SetPeers([]wire.Node{{NodeKey: pk, DiscoKey: key.NewDisco().Public(), Endpoints: []netip.AddrPort{ep}},
				{NodeKey: control, DiscoKey: key.NewDisco().Public()}})
			p := c.peer(pk)
			start := time.Now()
			for _, m := range tc.msgs {
				pkt := wgPacket(m.typ, 64, 0)
				if m.out {
					_ = c.Bind().Send([][]byte{pkt}, p.ep) // no path is open: only what it notes counts
				} else {
					c.noteWireGuard(p, pkt)
				}
			}
			slow := time.Since(start) >= time.Second // the rate limit may let a second report through
			// The control peer's report comes after any for pk (one queue,
			// one reader): count until it arrives.
			c.noteWireGuard(c.peer(control), wgPacket(4, 64, 0))
			got := 0
			deadline := time.NewTimer(wait)
			defer deadline.Stop()
			for {
				select {
				case k := <-reports:
					if k == control {
						if got != tc.want && !(slow && got > tc.want) {
							t.Fatalf("%d reports for the peer, want %d", got, tc.want)
						}
						return
					}
					got++
				case <-deadline.C:
					t.Fatalf("the control peer was not reported within %v", wait)
				}
			}
		})
	}
}

// TestPathDroppedWhenPeerStopsAnnouncingIt: a netmap whose endpoints for a
// peer no longer include the proven direct path (the peer restarted on
// another port, or its NAT moved it) ends the trust in that path, unless
// the peer's own pings still come from there.
func TestPathDroppedWhenPeerStopsAnnouncingIt(t *testing.T) {
	t.Parallel()
	a := netip.MustParseAddrPort("192.0.2.1:41641")
	b := netip.MustParseAddrPort("192.0.2.1:41642")
	for _, tc := range []struct {
		name    string
		next    []netip.AddrPort
		learned bool // the peer pinged us from a
		keep    bool
	}{
		{"address gone", []netip.AddrPort{b}, false, false},
		{"address still listed", []netip.AddrPort{b, a}, false, true},
		{"address gone but the peer pings from it", []netip.AddrPort{b}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newBareConn(t, Config{})
			pk, dk := key.NewNode().Public(), key.NewDisco().Public()
			c.SetPeers([]wire.Node{{NodeKey: pk, DiscoKey: dk, Endpoints: []netip.AddrPort{a}}})
			p := c.peer(pk)
			ep, err := c.udp.ParseEndpoint(a.String())
			if err != nil {
				t.Fatal(err)
			}
			p.best.Store(&bestAddr{addr: a, ep: ep, rtt: time.Millisecond})
			p.trustUntil.Store(c.now() + int64(time.Hour))
			if tc.learned {
				p.mu.Lock()
				p.learned[a] = c.now()
				p.mu.Unlock()
			}
			c.SetPeers([]wire.Node{{NodeKey: pk, DiscoKey: dk, Endpoints: tc.next}})
			_, trusted := p.trusted(c.now())
			if trusted != tc.keep {
				t.Fatalf("path %v still trusted: %v, want %v", a, trusted, tc.keep)
			}
		})
	}
}
