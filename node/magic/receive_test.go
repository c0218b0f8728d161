package magic

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/pion/stun/v3"
	"golang.zx2c4.com/wireguard/conn"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/disco"
)

// fakeEndpoint is a conn.Endpoint that is not the standard bind's.
type fakeEndpoint struct{ conn.StdNetEndpoint }

// TestReceiveUDP drives the wrapper around the socket's receive function
// with a batch of packets and checks, packet by packet, what WireGuard
// would see: only WireGuard messages from a peer's known address, labelled
// with the peer's endpoint (and nothing at all in relay-only mode).
func TestReceiveUDP(t *testing.T) {
	known := netip.MustParseAddrPort("192.0.2.1:41641")
	unknown := netip.MustParseAddrPort("192.0.2.9:41641")
	mapped := netip.AddrPortFrom(netip.AddrFrom16(known.Addr().As16()), known.Port()) // ::ffff:192.0.2.1
	wg := wgPacket(4, 64, 1)
	stunPkt := stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw
	ping := disco.Seal(key.NewDisco(), key.NewDisco().Public(), &disco.Ping{TxID: disco.NewTxID()})

	type in struct {
		pkt  []byte
		from conn.Endpoint
	}
	std := func(a netip.AddrPort) conn.Endpoint { return &conn.StdNetEndpoint{AddrPort: a} }
	batch := []struct {
		name string
		in
		direct bool // WireGuard sees it with the peer's endpoint (when not relay-only)
	}{
		{"wireguard from the peer", in{wg, std(known)}, true},
		{"wireguard from the peer, IPv4-mapped", in{wg, std(mapped)}, true},
		{"wireguard handshake from the peer", in{wgPacket(1, 148, 2), std(known)}, true},
		{"wireguard from an unknown address", in{wg, std(unknown)}, false},
		{"disco from the peer's address", in{ping, std(known)}, false},
		{"stun from the peer's address", in{stunPkt, std(known)}, false},
		{"garbage from the peer's address", in{[]byte("hello"), std(known)}, false},
		{"empty from the peer's address", in{nil, std(known)}, false},
		{"wireguard from a foreign endpoint type", in{wg, &fakeEndpoint{conn.StdNetEndpoint{AddrPort: known}}}, false},
		{"wireguard with no endpoint", in{wg, nil}, false},
	}
	for _, relayOnly := range []bool{false, true} {
		c := newBareConn(t, Config{RelayOnly: relayOnly})
		pk := key.NewNode().Public()
		c.SetPeers([]wire.Node{{NodeKey: pk, DiscoKey: key.NewDisco().Public(), Endpoints: []netip.AddrPort{known}}})
		p := c.peer(pk)

		// The batch, plus room the inner function leaves unused.
		n := len(batch)
		packets := make([][]byte, n+2)
		sizes := make([]int, n+2)
		eps := make([]conn.Endpoint, n+2)
		for i := range packets {
			packets[i] = make([]byte, 1500)
		}
		errInner := errors.New("inner error")
		inner := func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
			for i, b := range batch {
				sizes[i] = copy(packets[i], b.pkt)
				eps[i] = b.from
			}
			return n, errInner
		}
		got, err := c.receiveUDP(inner)(packets, sizes, eps)
		if got != n || err != errInner {
			t.Fatalf("relay-only %v: receive returned %d, %v; want %d and the inner error", relayOnly, got, err, n)
		}
		for i, b := range batch {
			want := b.direct && !relayOnly
			switch {
			case want && (sizes[i] != len(b.pkt) || eps[i] != p.ep):
				t.Errorf("relay-only %v: %s: size %d from %v, want %d from the peer", relayOnly, b.name, sizes[i], eps[i], len(b.pkt))
			case !want && sizes[i] != 0:
				t.Errorf("relay-only %v: %s: WireGuard sees %d bytes, want none", relayOnly, b.name, sizes[i])
			}
		}
	}
}

// TestReceiveRelay checks the relay receive function: it fills as much of
// the batch as is queued, and ends with net.ErrClosed when its bind
// generation closes.
func TestReceiveRelay(t *testing.T) {
	c := newBareConn(t, Config{})
	pk := key.NewNode().Public()
	c.SetPeers([]wire.Node{{NodeKey: pk}})
	p := c.peer(pk)
	gen := &bindGen{closed: make(chan struct{})}
	fn := c.receiveRelay(gen)
	packets := [][]byte{make([]byte, 100), make([]byte, 100)}
	sizes, eps := make([]int, 2), make([]conn.Endpoint, 2)
	for i := range 3 {
		c.derpRecv <- relayPacket{from: p, data: wgPacket(4, 40+i, byte(i))}
	}
	n, err := fn(packets, sizes, eps)
	if n != 2 || err != nil || sizes[0] != 40 || sizes[1] != 41 || eps[0] != p.ep || eps[1] != p.ep {
		t.Fatalf("first batch: %d, %v, sizes %v", n, err, sizes)
	}
	n, err = fn(packets, sizes, eps)
	if n != 1 || err != nil || sizes[0] != 42 || packets[0][4] != 2 {
		t.Fatalf("second batch: %d, %v, sizes %v", n, err, sizes)
	}
	close(gen.closed)
	if n, err := fn(packets, sizes, eps); n != 0 || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("after close: %d, %v; want net.ErrClosed", n, err)
	}
}
