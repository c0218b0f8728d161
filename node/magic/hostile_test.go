package magic

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/pion/stun/v3"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/disco"
)

// hostileSetup is a Conn with one peer whose keys the test holds, and no
// relays (a nil DERP map).
type hostileSetup struct {
	n         *node
	peerNode  key.NodePrivate
	peerDisco key.DiscoPrivate
	sk        disco.SharedKey // the peer's side: seals to and opens from the Conn
	p         *peer
}

func newHostileSetup(t *testing.T, endpoints ...netip.AddrPort) *hostileSetup {
	t.Helper()
	h := &hostileSetup{n: startNode(t, Config{}), peerNode: key.NewNode(), peerDisco: key.NewDisco()}
	h.n.c.SetPeers([]wire.Node{{NodeKey: h.peerNode.Public(), DiscoKey: h.peerDisco.Public(), Endpoints: endpoints}})
	h.sk = disco.Shared(h.peerDisco, h.n.disco.Public())
	h.p = h.n.c.peer(h.peerNode.Public())
	if h.p == nil {
		t.Fatal("SetPeers did not add the peer")
	}
	return h
}

// ping seals a valid ping from the peer.
func (h *hostileSetup) ping(tx [12]byte) []byte {
	return h.sk.Seal(&disco.Ping{TxID: tx, NodeKey: h.peerNode.Public()})
}

// pingFrom sends a valid ping from s and waits for its pong. Since the
// Conn handles one socket's packets in order, everything s sent before
// has been handled when the pong arrives. It may be called from any
// goroutine.
func (h *hostileSetup) pingFrom(s *udpSock) error {
	tx := disco.NewTxID()
	s.send(h.n.addr(), h.ping(tx))
	_, err := s.waitDisco(h.sk, pongTo(tx))
	return err
}

// mustPingFrom is pingFrom for the test goroutine.
func (h *hostileSetup) mustPingFrom(t *testing.T, s *udpSock) {
	t.Helper()
	if err := h.pingFrom(s); err != nil {
		t.Fatal(err)
	}
}

// learned returns the peer's learned addresses, sorted.
func (h *hostileSetup) learned() []netip.AddrPort {
	h.p.mu.Lock()
	defer h.p.mu.Unlock()
	out := slices.Collect(func(yield func(netip.AddrPort) bool) {
		for a := range h.p.learned {
			if !yield(a) {
				return
			}
		}
	})
	slices.SortFunc(out, netip.AddrPort.Compare)
	return out
}

// indexed returns the addresses the packet index maps to a peer, sorted.
func (h *hostileSetup) indexed() []netip.AddrPort {
	var out []netip.AddrPort
	for a := range h.n.c.peers.Load().byAddr {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return out
}

// TestHostileUDP sends what an attacker on the network can send to the
// WireGuard socket and checks that none of it reaches WireGuard, teaches
// the Conn an address, proves a path or draws an answer.
func TestHostileUDP(t *testing.T) {
	t.Parallel()
	h := newHostileSetup(t)
	attacker := listenUDP(t)
	spy := listenUDP(t) // named by a call-me-maybe over UDP; must never be pinged
	stranger := key.NewDisco()
	rng := rand.New(rand.NewChaCha8([32]byte{'h', 'o', 's', 't', 'i', 'l', 'e'}))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	withPrefix := func(prefix []byte, n int) []byte {
		b := random(n)
		copy(b, prefix)
		return b
	}

	valid := h.ping(disco.NewTxID())
	tampered := slices.Clone(valid)
	tampered[len(tampered)-1] ^= 1
	wrongHeader := slices.Clone(valid) // the stranger's key in the header, the peer's box
	raw := stranger.Public().Raw()
	copy(wrongHeader[disco.MagicLen:], raw[:])
	nonCanonical := slices.Clone(valid)
	nonCanonical[disco.MagicLen+31] |= 0x80
	peerRaw := h.peerDisco.Public().Raw()
	magicOnly := valid[:disco.MagicLen]
	selfNode := h.n.nodeK.Public()

	cases := []struct {
		name string
		pkt  []byte
	}{
		{"garbage 1 byte", random(1)},
		{"garbage 7 bytes", random(7)},
		{"garbage 100 bytes", random(100)},
		{"garbage 1400 bytes", random(1400)},
		{"zeros", make([]byte, 148)},
		{"disco magic only", magicOnly},
		{"disco magic and the peer's key only", append(slices.Clone(magicOnly), peerRaw[:]...)},
		{"disco header only", valid[:disco.MinPacketLen-16]},
		{"disco below the minimum length", valid[:disco.MinPacketLen-1]},
		{"disco empty box", valid[:disco.MinPacketLen]},
		{"disco ping less one byte", valid[:len(valid)-1]},
		{"disco ping plus one byte", append(slices.Clone(valid), 0)},
		{"disco ping tampered", tampered},
		{"disco ping with a stranger's key in the header", wrongHeader},
		{"disco ping with a non-canonical sender key", nonCanonical},
		{"disco ping sealed by an unknown key", disco.Seal(stranger, h.n.disco.Public(),
			&disco.Ping{TxID: disco.NewTxID(), NodeKey: h.peerNode.Public()})},
		{"disco ping sealed to another key", disco.Seal(h.peerDisco, stranger.Public(),
			&disco.Ping{TxID: disco.NewTxID(), NodeKey: h.peerNode.Public()})},
		{"disco ping naming another node key", h.sk.Seal(&disco.Ping{TxID: disco.NewTxID(), NodeKey: key.NewNode().Public()})},
		{"disco ping naming the receiver's node key", h.sk.Seal(&disco.Ping{TxID: disco.NewTxID(), NodeKey: selfNode})},
		{"disco ping naming no node key", h.sk.Seal(&disco.Ping{TxID: disco.NewTxID()})},
		{"disco pong with an unknown TxID", h.sk.Seal(&disco.Pong{TxID: disco.NewTxID(), Src: attacker.addr()})},
		{"disco pong with a zero TxID", h.sk.Seal(&disco.Pong{Src: attacker.addr()})},
		{"disco call-me-maybe over UDP", h.sk.Seal(&disco.CallMeMaybe{Endpoints: []netip.AddrPort{spy.addr()}})},
		{"disco garbage after the magic", withPrefix(magicOnly, 200)},
		{"stun response to no request", stun.MustBuild(stun.TransactionID, stun.BindingSuccess,
			&stun.XORMappedAddress{IP: net.IPv4(203, 0, 113, 9), Port: 9}).Raw},
		{"stun request", stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw},
		{"huge garbage", random(65000)},
		{"huge disco", withPrefix(magicOnly, 65000)},
		{"huge disco with the peer's key", withPrefix(append(slices.Clone(magicOnly), peerRaw[:]...), 65000)},
		{"huge stun", withPrefix([]byte{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42}, 65000)},
		{"huge wireguard", wgPacket(4, 65000, 0xee)},
	}
	for typ := byte(1); typ <= 4; typ++ {
		cases = append(cases, struct {
			name string
			pkt  []byte
		}{fmt.Sprintf("wireguard type %d from an unknown address", typ), wgPacket(typ, 148, 0xaa)})
	}
	for _, tc := range cases {
		attacker.send(h.n.addr(), tc.pkt)
	}

	// A valid ping from another socket: once its pong is back, all of the
	// above has been handled (one socket's packets are read in order).
	peerSock := listenUDP(t)
	h.mustPingFrom(t, peerSock)

	if got := h.n.packets(); len(got) != 0 {
		t.Errorf("%d hostile packets reached WireGuard; first: %x…", len(got), got[0].data[:min(16, len(got[0].data))])
	}
	if got, want := h.learned(), []netip.AddrPort{peerSock.addr()}; !slices.Equal(got, want) {
		t.Errorf("learned %v, want only the authenticated pinger %v", got, want)
	}
	if got, want := h.indexed(), []netip.AddrPort{peerSock.addr()}; !slices.Equal(got, want) {
		t.Errorf("index maps %v to peers, want only %v", got, want)
	}
	if b := h.p.best.Load(); b != nil {
		t.Errorf("a direct path to %v was proven by hostile input", b.addr)
	}
	h.p.mu.Lock()
	for a := range h.p.lastPing {
		if a != peerSock.addr() {
			t.Errorf("pinged %v", a)
		}
	}
	h.p.mu.Unlock()
	// Every answer the Conn gives is sent before it reads the next packet,
	// so answers to the attacker would be queued by now.
	if got := attacker.queued(); len(got) != 0 {
		t.Errorf("the attacker got %d answers", len(got))
	}
	if got := spy.queued(); len(got) != 0 {
		t.Errorf("a call-me-maybe over UDP made the Conn send %d packets to the address it named", len(got))
	}

	// Control: WireGuard from the learned address reaches WireGuard as
	// the peer; from the attacker it still does not.
	attacker.send(h.n.addr(), wgPacket(4, 64, 1))
	peerSock.send(h.n.addr(), wgPacket(4, 64, 2))
	d := h.n.waitPacket(func(delivered) bool { return true })
	if !bytes.Equal(d.data, wgPacket(4, 64, 2)) {
		t.Errorf("WireGuard got %x…, want the peer's packet", d.data[:8])
	}
	if d.ep != h.p.ep {
		t.Errorf("WireGuard got the packet from %v, want the peer's endpoint", d.ep.DstToString())
	}
	if got := h.n.packets(); len(got) != 1 {
		t.Errorf("WireGuard got %d packets, want 1", len(got))
	}
}

// TestPingFlood floods the Conn with valid pings from many source ports,
// while the netmap changes under it, and checks that what a peer can make
// it remember stays bounded and the newest addresses win.
func TestPingFlood(t *testing.T) {
	t.Parallel()
	sink := listenUDP(t) // the netmap's endpoints for the peer
	h := newHostileSetup(t, sink.addr())
	h.n.c.Bind().Send([][]byte{wgPacket(4, 32, 0)}, h.p.ep) // make the peer active: pings get pinged back

	// Concurrent flood from 4 goroutines and netmap churn: the lock order
	// between learning (peer, then Conn) and SetPeers (Conn, then peer)
	// must hold up.
	const senders, perSender = 4, maxLastPing/4 + maxLearned
	socks := make([][]*udpSock, senders)
	for i := range socks {
		for range perSender {
			socks[i] = append(socks[i], listenUDP(t))
		}
	}
	stop := make(chan struct{})
	churned := make(chan struct{})
	go func() {
		defer close(churned)
		other := listenUDP(t).addr()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			eps := []netip.AddrPort{sink.addr()}
			if i%2 == 1 {
				eps = append(eps, other)
			}
			h.n.c.SetPeers([]wire.Node{{NodeKey: h.peerNode.Public(), DiscoKey: h.peerDisco.Public(), Endpoints: eps}})
		}
	}()
	var wg sync.WaitGroup
	for _, ss := range socks {
		wg.Go(func() {
			for _, s := range ss {
				if err := h.pingFrom(s); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-churned

	h.p.mu.Lock()
	learned, pending, lastPing := len(h.p.learned), len(h.p.pending), len(h.p.lastPing)
	h.p.mu.Unlock()
	if learned > maxLearned {
		t.Errorf("learned %d addresses, more than %d", learned, maxLearned)
	}
	if pending > maxPending {
		t.Errorf("%d pings pending, more than %d", pending, maxPending)
	}
	if lastPing > maxLastPing {
		t.Errorf("remembering when %d addresses were pinged, more than %d", lastPing, maxLastPing)
	}
	if idx := len(h.indexed()); idx > maxLearned+2 {
		t.Errorf("index holds %d addresses, more than %d learned and 2 from the netmap", idx, maxLearned)
	}

	// One after the other, the newest maxLearned addresses are the ones
	// kept.
	var newest []netip.AddrPort
	for range maxLearned + 4 {
		s := listenUDP(t)
		h.mustPingFrom(t, s)
		newest = append(newest, s.addr())
	}
	newest = newest[len(newest)-maxLearned:]
	slices.SortFunc(newest, netip.AddrPort.Compare)
	if got := h.learned(); !slices.Equal(got, newest) {
		t.Errorf("learned %v\nwant the newest %v", got, newest)
	}
	// A ping from a netmap endpoint teaches nothing new.
	h.mustPingFrom(t, sink)
	if got := h.learned(); slices.Contains(got, sink.addr()) {
		t.Errorf("the netmap's endpoint %v was learned", sink.addr())
	}
}
