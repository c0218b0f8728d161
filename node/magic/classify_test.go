package magic

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"testing"

	"github.com/pion/stun/v3"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/node/disco"
)

// TestClassify checks the three tests receiveUDP uses to sort what
// arrives on the WireGuard socket. receiveUDP tries them in the order
// WireGuard, disco, STUN, so a packet that two of them accept goes to the
// first.
func TestClassify(t *testing.T) {
	rng := rand.New(rand.NewChaCha8([32]byte{'w', 'a', 'r', 'r', 'e', 'n'}))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}

	stunReq := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint).Raw
	stunResp := stun.MustBuild(stun.TransactionID, stun.BindingSuccess,
		&stun.XORMappedAddress{IP: net.IPv4(203, 0, 113, 7), Port: 41641}, stun.Fingerprint).Raw
	stunResp6 := stun.MustBuild(stun.TransactionID, stun.BindingSuccess,
		&stun.XORMappedAddress{IP: net.ParseIP("2001:db8::7"), Port: 41641}).Raw
	badCookie := append([]byte(nil), stunReq...)
	binary.BigEndian.PutUint32(badCookie[4:8], stunMagicCookie+1)
	topBits := append([]byte(nil), stunReq...)
	topBits[0] |= 0x40

	from, to := key.NewDisco(), key.NewDisco()
	ping := disco.Seal(from, to.Public(), &disco.Ping{TxID: disco.NewTxID(), NodeKey: key.NewNode().Public()})
	pong := disco.Seal(from, to.Public(), &disco.Pong{TxID: disco.NewTxID()})
	cmm := disco.Seal(from, to.Public(), &disco.CallMeMaybe{})

	// A WireGuard message whose bytes 4..8 (a sender or receiver index)
	// happen to equal the STUN cookie passes both tests; WireGuard wins.
	wgCookie := wgPacket(4, 32, 0)
	binary.BigEndian.PutUint32(wgCookie[4:8], stunMagicCookie)

	type want struct{ wg, stun, disco bool }
	tests := []struct {
		name string
		pkt  []byte
		want want
	}{
		{"nil", nil, want{}},
		{"empty", []byte{}, want{}},
		{"one byte", []byte{1}, want{}},
		{"three bytes of type 1", []byte{1, 0, 0}, want{}},
		{"wg header only", []byte{4, 0, 0, 0}, want{wg: true}},
		{"wg handshake initiation", wgPacket(1, 148, 0xab), want{wg: true}},
		{"wg handshake response", wgPacket(2, 92, 0xab), want{wg: true}},
		{"wg cookie reply", wgPacket(3, 64, 0xab), want{wg: true}},
		{"wg transport data", wgPacket(4, 32+1420, 0xab), want{wg: true}},
		{"wg keepalive", wgPacket(4, 32, 0), want{wg: true}},
		{"wg with cookie-like index", wgCookie, want{wg: true, stun: true}},
		{"type 0", wgPacket(0, 148, 0), want{}},
		{"type 5", wgPacket(5, 148, 0), want{}},
		{"type 1, reserved byte 1 set", append([]byte{1, 1, 0, 0}, make([]byte, 144)...), want{}},
		{"type 4, reserved byte 3 set", append([]byte{4, 0, 0, 1}, make([]byte, 28)...), want{}},
		{"stun binding request", stunReq, want{stun: true}},
		{"stun binding response v4", stunResp, want{stun: true}},
		{"stun binding response v6", stunResp6, want{stun: true}},
		{"stun header only", stunReq[:20], want{stun: true}},
		{"stun truncated to 19 bytes", stunReq[:19], want{}},
		{"stun with wrong cookie", badCookie, want{}},
		{"stun with top bits set", topBits, want{}},
		{"disco ping", ping, want{disco: true}},
		{"disco pong", pong, want{disco: true}},
		{"disco call-me-maybe", cmm, want{disco: true}},
		{"disco magic only", ping[:disco.MagicLen], want{disco: true}},
		{"disco magic truncated", ping[:disco.MagicLen-1], want{}},
		{"disco magic, one byte wrong", append([]byte{'W'}, ping[1:]...), want{}},
		{"random 1 byte", random(1), want{}},
		{"random 20 bytes", random(20), want{}},
		{"random 148 bytes", random(148), want{}},
		{"random 1500 bytes", random(1500), want{}},
		{"zeros", make([]byte, 1500), want{}},
		{"ones", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, want{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := want{wg: isWireGuard(tt.pkt), stun: isSTUN(tt.pkt), disco: disco.Looks(tt.pkt)}
			if got != tt.want {
				t.Errorf("isWireGuard, isSTUN, disco.Looks = %v, %v, %v; want %v, %v, %v",
					got.wg, got.stun, got.disco, tt.want.wg, tt.want.stun, tt.want.disco)
			}
		})
	}
}

// TestClassifyExclusive checks, over random packets that start like each
// kind, that a disco packet is never also taken for WireGuard or STUN:
// disco's magic starts with a byte that is neither a WireGuard type nor
// STUN-shaped.
func TestClassifyExclusive(t *testing.T) {
	rng := rand.New(rand.NewChaCha8([32]byte{'m', 'a', 'g', 'i', 'c'}))
	ping := disco.Seal(key.NewDisco(), key.NewDisco().Public(), &disco.Ping{TxID: disco.NewTxID()})
	prefixes := [][]byte{
		nil,
		ping[:disco.MagicLen],
		{1, 0, 0, 0}, {2, 0, 0, 0}, {3, 0, 0, 0}, {4, 0, 0, 0},
		{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42},
		{1, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42},
	}
	buf := make([]byte, 96)
	for range 20000 {
		pkt := buf[:rng.IntN(len(buf)+1)]
		for i := range pkt {
			pkt[i] = byte(rng.Uint32())
		}
		copy(pkt, prefixes[rng.IntN(len(prefixes))])
		if disco.Looks(pkt) && (isWireGuard(pkt) || isSTUN(pkt)) {
			t.Fatalf("%x is disco and also WireGuard or STUN", pkt)
		}
		if isWireGuard(pkt) && (pkt[0] < 1 || pkt[0] > 4 || pkt[1]|pkt[2]|pkt[3] != 0) {
			t.Fatalf("%x taken for WireGuard", pkt)
		}
		if isSTUN(pkt) && (len(pkt) < 20 || pkt[0]&0xc0 != 0 || binary.BigEndian.Uint32(pkt[4:8]) != stunMagicCookie) {
			t.Fatalf("%x taken for STUN", pkt)
		}
	}
}
