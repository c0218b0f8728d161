package engine

import (
	"errors"
	"net/netip"
	"testing"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/warrenmesh/warren/internal/key"
)

// refusingBind is a UDP bind whose socket the OS refuses, as Go's net
// package fails every UDP socket under Wine 8.
type refusingBind struct{ conn.Bind }

func (refusingBind) Open(uint16) ([]conn.ReceiveFunc, uint16, error) {
	return nil, 0, errors.New("listen udp4 :0: wsaioctl: winapi error #10045")
}

// TestNoUDPSocket: with no UDP socket to be had, the data plane still
// starts (on relays alone) and reports port 0; a fixed port that cannot
// be had still fails it.
func TestNoUDPSocket(t *testing.T) {
	addrs := []netip.Prefix{netip.MustParsePrefix("100.64.9.2/32")}
	e, err := New(Config{NodeKey: key.NewNode(), Addresses: addrs, UDP: refusingBind{conn.NewStdNetBind()}})
	if err != nil {
		t.Fatalf("New without a UDP socket: %v", err)
	}
	if p := e.Port(); p != 0 {
		t.Errorf("Port() = %d, want 0", p)
	}
	e.Close()
	e, err = New(Config{NodeKey: key.NewNode(), Addresses: addrs, ListenPort: 41641, UDP: refusingBind{conn.NewStdNetBind()}})
	if err == nil {
		e.Close()
		t.Fatal("New with a fixed port and no UDP socket succeeded")
	}
}
