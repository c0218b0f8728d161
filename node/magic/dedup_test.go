package magic

import (
	"net/netip"
	"sync"
	"testing"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/wire"
)

// TestHandshakeCopiesReachWireGuardOnce: a handshake message that arrives
// twice (the relay's copy and the copy resendInit sends on a path just
// proven, or the copies Send makes while a direct path is in doubt) is
// handed to WireGuard once, whichever way each copy came. wireguard-go
// checks an initiation for replay before it records it, on as many
// goroutines as there are CPUs, so two copies handled at once can both
// be answered: the peer then keeps the keys of one answer and this node
// those of the other, and nothing gets through until the peer's timers
// give up on the session (15 s). Data packets are not filtered here
// (WireGuard's replay window handles them), nor are distinct handshake
// messages.
func TestHandshakeCopiesReachWireGuardOnce(t *testing.T) {
	addr := netip.MustParseAddrPort("192.0.2.1:41641")
	init1 := wgPacket(wgInitiation, 148, 1)
	init2 := wgPacket(wgInitiation, 148, 2)
	resp := wgPacket(wgResponse, 92, 3)
	data := wgPacket(wgData, 64, 4)
	type arrival struct {
		pkt   []byte
		relay bool // through the relay, else over UDP from the peer's address
	}
	tests := []struct {
		name string
		in   []arrival
		want []bool // whether WireGuard sees each arrival
	}{
		{"initiation over UDP then relay", []arrival{{init1, false}, {init1, true}}, []bool{true, false}},
		{"initiation over relay then UDP", []arrival{{init1, true}, {init1, false}}, []bool{true, false}},
		{"initiation twice over UDP", []arrival{{init1, false}, {init1, false}}, []bool{true, false}},
		{"response over relay then UDP", []arrival{{resp, true}, {resp, false}}, []bool{true, false}},
		{"a new initiation passes", []arrival{{init1, true}, {init2, false}, {init2, true}}, []bool{true, true, false}},
		{"data copies pass", []arrival{{data, true}, {data, false}}, []bool{true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newBareConn(t, Config{})
			pk := key.NewNode().Public()
			c.SetPeers([]wire.Node{{NodeKey: pk, DiscoKey: key.NewDisco().Public(), Endpoints: []netip.AddrPort{addr}}})
			p := c.peer(pk)
			relayFn := c.receiveRelay(&bindGen{closed: make(chan struct{})})
			for i, a := range tt.in {
				packets := [][]byte{make([]byte, maxMessage)}
				sizes, eps := make([]int, 1), make([]conn.Endpoint, 1)
				var n int
				if a.relay {
					c.derpRecv <- relayPacket{from: p, data: a.pkt}
					n, _ = relayFn(packets, sizes, eps)
				} else {
					n, _ = c.receiveUDP(func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
						sizes[0] = copy(packets[0], a.pkt)
						eps[0] = &conn.StdNetEndpoint{AddrPort: addr}
						return 1, nil
					})(packets, sizes, eps)
				}
				seen := n == 1 && sizes[0] == len(a.pkt) && eps[0] == p.ep
				if seen != tt.want[i] {
					t.Errorf("arrival %d (relay %v, type %d): WireGuard sees it: %v, want %v", i, a.relay, a.pkt[0], seen, tt.want[i])
				}
			}
		})
	}
}

// TestHandshakeCopiesAtOnce delivers copies of one initiation on the UDP
// and relay receive paths at the same time, as WireGuard's receive
// goroutines do, many times: exactly one copy gets through each time.
func TestHandshakeCopiesAtOnce(t *testing.T) {
	addr := netip.MustParseAddrPort("192.0.2.1:41641")
	c := newBareConn(t, Config{})
	pk := key.NewNode().Public()
	c.SetPeers([]wire.Node{{NodeKey: pk, DiscoKey: key.NewDisco().Public(), Endpoints: []netip.AddrPort{addr}}})
	p := c.peer(pk)
	for round := range 200 {
		pkt := wgPacket(wgInitiation, 148, byte(round))
		pkt[5] = byte(round >> 8) // distinct from every other round's
		var wg sync.WaitGroup
		var mu sync.Mutex
		passed := 0
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if c.noteWireGuard(p, pkt) {
					mu.Lock()
					passed++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if passed != 1 {
			t.Fatalf("round %d: %d copies got through, want 1", round, passed)
		}
	}
}
