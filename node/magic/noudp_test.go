package magic

import (
	"bytes"
	"errors"
	"testing"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/warrenmesh/warren/internal/wire"
)

// refusingBind is a UDP bind whose socket the OS refuses, as Go's net
// package fails every UDP socket under Wine 8 (WSAIoctl SIO_UDP_NETRESET:
// WSAEOPNOTSUPP).
type refusingBind struct{ conn.Bind }

var errRefused = errors.New("listen udp4 :0: wsaioctl: winapi error #10045")

func (refusingBind) Open(uint16) ([]conn.ReceiveFunc, uint16, error) { return nil, 0, errRefused }

// TestNoUDPSocket: a node whose OS gives it no UDP socket at all still
// opens its bind, on the relays alone, and exchanges packets with a peer
// that has UDP; a port asked for by number that cannot be had stays an
// error.
func TestNoUDPSocket(t *testing.T) {
	t.Parallel()
	region := startRelay(t)
	dm := &wire.DERPMap{Regions: []wire.DERPRegion{region}}
	a := startNode(t, Config{UDP: refusingBind{conn.NewStdNetBind()}})
	b := startNode(t, Config{})
	if a.port != 0 {
		t.Fatalf("bind without a socket reports port %d", a.port)
	}
	if _, _, err := (&Bind{c: a.c}).Open(41641); !errors.Is(err, errRefused) {
		t.Errorf("Open(41641) without a socket = %v, want the error", err)
	}
	a.c.SetDERPMap(dm)
	b.c.SetDERPMap(dm)
	a.c.SetPeers([]wire.Node{b.asPeer(region.ID, b.addr())})
	b.c.SetPeers([]wire.Node{a.asPeer(region.ID)})
	aKey, bKey := a.nodeK.Public(), b.nodeK.Public()
	a.relayUp(region.ID)
	b.relayUp(region.ID)

	ab := wgPacket(1, 148, 0xab)
	if err := a.c.Bind().Send([][]byte{ab}, a.endpoint(bKey)); err != nil {
		t.Fatalf("send: %v", err)
	}
	b.waitPacket(func(d delivered) bool { return bytes.Equal(d.data, ab) })
	ba := wgPacket(2, 92, 0xba)
	if err := b.c.Bind().Send([][]byte{ba}, b.endpoint(aKey)); err != nil {
		t.Fatalf("send: %v", err)
	}
	a.waitPacket(func(d delivered) bool { return bytes.Equal(d.data, ba) })
	if got, want := a.c.Path(bKey), "relay "+region.Code; got != want {
		t.Errorf("a's path %q, want %q", got, want)
	}
}
