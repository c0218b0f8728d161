package disco

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/internal/key"
)

func sampleMessages() map[string]Message {
	eps := make([]netip.AddrPort, MaxEndpoints)
	for i := range eps {
		eps[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), uint16(40000+i))
	}
	return map[string]Message{
		"ping":           &Ping{TxID: NewTxID(), NodeKey: key.NewNode().Public()},
		"ping zero":      &Ping{},
		"pong v4":        &Pong{TxID: NewTxID(), Src: netip.MustParseAddrPort("203.0.113.7:41641")},
		"pong v6":        &Pong{TxID: NewTxID(), Src: netip.MustParseAddrPort("[2001:db8::1]:65535")},
		"pong no src":    &Pong{TxID: NewTxID()},
		"cmm empty":      &CallMeMaybe{},
		"cmm mixed":      &CallMeMaybe{Endpoints: []netip.AddrPort{netip.MustParseAddrPort("192.168.1.2:1"), netip.MustParseAddrPort("[fd00::2]:2")}},
		"cmm max":        &CallMeMaybe{Endpoints: eps},
		"cmm zero port":  &CallMeMaybe{Endpoints: []netip.AddrPort{netip.MustParseAddrPort("1.2.3.4:0")}},
		"pong 255.255.x": &Pong{Src: netip.MustParseAddrPort("255.255.255.255:7")},
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	a, b := key.NewDisco(), key.NewDisco()
	for name, m := range sampleMessages() {
		t.Run(name, func(t *testing.T) {
			pkt := Seal(a, b.Public(), m)
			if !Looks(pkt) {
				t.Fatal("sealed packet does not Look like disco")
			}
			if got, err := Sender(pkt); err != nil || got != a.Public() {
				t.Fatalf("Sender = %v, %v; want %v", got, err, a.Public())
			}
			from, got, err := Open(b, pkt)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if from != a.Public() {
				t.Errorf("from = %v, want %v", from, a.Public())
			}
			if !reflect.DeepEqual(got, m) {
				t.Errorf("Open = %#v, want %#v", got, m)
			}

			// The precomputed path interoperates both ways.
			ab, ba := Shared(a, b.Public()), Shared(b, a.Public())
			got2, err := ba.Open(ab.Seal(m))
			if err != nil || !reflect.DeepEqual(got2, m) {
				t.Errorf("shared round trip = %#v, %v", got2, err)
			}
			if _, got3, err := Open(b, ab.Seal(m)); err != nil || !reflect.DeepEqual(got3, m) {
				t.Errorf("shared Seal, plain Open = %#v, %v", got3, err)
			}
			if got4, err := ba.Open(pkt); err != nil || !reflect.DeepEqual(got4, m) {
				t.Errorf("plain Seal, shared Open = %#v, %v", got4, err)
			}
		})
	}
}

func TestAddressesUnmapped(t *testing.T) {
	a, b := key.NewDisco(), key.NewDisco()
	mapped := netip.MustParseAddrPort("[::ffff:198.51.100.1]:5")
	zoned := netip.AddrPortFrom(netip.MustParseAddr("fe80::1%eth0"), 6)
	_, m, err := Open(b, Seal(a, b.Public(), &CallMeMaybe{Endpoints: []netip.AddrPort{mapped, zoned}}))
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.AddrPort{netip.MustParseAddrPort("198.51.100.1:5"), netip.MustParseAddrPort("[fe80::1]:6")}
	if got := m.(*CallMeMaybe).Endpoints; !reflect.DeepEqual(got, want) {
		t.Errorf("endpoints = %v, want %v", got, want)
	}
}

func TestCallMeMaybeTruncated(t *testing.T) {
	a, b := key.NewDisco(), key.NewDisco()
	eps := make([]netip.AddrPort, MaxEndpoints+5)
	for i := range eps {
		eps[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, 0, byte(i)}), 1)
	}
	_, m, err := Open(b, Seal(a, b.Public(), &CallMeMaybe{Endpoints: eps}))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.(*CallMeMaybe).Endpoints; !reflect.DeepEqual(got, eps[:MaxEndpoints]) {
		t.Errorf("got %d endpoints, want the first %d", len(got), MaxEndpoints)
	}
}

func TestOpenFailures(t *testing.T) {
	a, b, c := key.NewDisco(), key.NewDisco(), key.NewDisco()
	ping := &Ping{TxID: NewTxID(), NodeKey: key.NewNode().Public()}
	good := Seal(a, b.Public(), ping)

	flip := func(i int) []byte {
		p := bytes.Clone(good)
		p[i] ^= 0x01
		return p
	}
	flip2 := func(i int, mask byte) []byte {
		p := bytes.Clone(good)
		p[i] ^= mask
		return p
	}
	nonCanonical := bytes.Clone(good)
	copy(nonCanonical[MagicLen:], bytes.Repeat([]byte{0xff}, keyLen))
	nonCanonical[MagicLen+31] = 0x7f
	// A packet claiming c's key but sealed by a.
	forged := bytes.Clone(good)
	craw := c.Public().Raw()
	copy(forged[MagicLen:], craw[:])

	tests := []struct {
		name string
		to   key.DiscoPrivate
		pkt  []byte
		want error
	}{
		{"empty", b, nil, ErrNotDisco},
		{"magic only", b, []byte(magic), ErrNotDisco},
		{"one short", b, good[:MinPacketLen-1], ErrNotDisco},
		{"no magic", b, flip(0), ErrNotDisco},
		{"wrong receiver", c, good, ErrOpen},
		{"sender key tampered", b, flip(MagicLen + 3), ErrOpen},
		{"sender key forged", b, forged, ErrOpen},
		{"sender key top bit", b, flip2(MagicLen+31, 0x80), ErrOpen},
		{"sender key >= p", b, nonCanonical, ErrOpen},
		{"nonce tampered", b, flip(MagicLen + keyLen + 1), ErrOpen},
		{"box tampered", b, flip(headerLen + 5), ErrOpen},
		{"tag tampered", b, flip(len(good) - 1), ErrOpen},
		{"truncated box", b, good[:len(good)-1], ErrOpen},
		{"extended box", b, append(bytes.Clone(good), 0), ErrOpen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, m, err := Open(tt.to, tt.pkt)
			if !errors.Is(err, tt.want) || m != nil {
				t.Errorf("Open = %v, %v; want %v", m, err, tt.want)
			}
			sk := Shared(tt.to, a.Public())
			if m, err := sk.Open(tt.pkt); !errors.Is(err, tt.want) || m != nil {
				t.Errorf("SharedKey.Open = %v, %v; want %v", m, err, tt.want)
			}
		})
	}
	// Every single-bit flip anywhere is rejected.
	for i := range len(good) * 8 {
		p := bytes.Clone(good)
		p[i/8] ^= 1 << (i % 8)
		if _, _, err := Open(b, p); err == nil {
			t.Fatalf("bit %d flipped: Open succeeded", i)
		}
	}
	if _, err := (SharedKey{}).Open(good); !errors.Is(err, ErrOpen) {
		t.Errorf("zero SharedKey Open err = %v, want ErrOpen", err)
	}
}

func TestDecode(t *testing.T) {
	tx := bytes.Repeat([]byte{0xaa}, txLen)
	nk := bytes.Repeat([]byte{0xbb}, keyLen)
	addr := append(bytes.Repeat([]byte{0}, 10), 0xff, 0xff, 192, 0, 2, 1, 0x12, 0x34)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	ver := func(typ, v byte) []byte { return []byte{typ, v} }

	wantPing := &Ping{TxID: [12]byte(tx), NodeKey: key.PublicFromRaw[key.NodeKind]([32]byte(nk))}
	wantPong := &Pong{TxID: [12]byte(tx), Src: netip.MustParseAddrPort("192.0.2.1:4660")}
	wantCMM := &CallMeMaybe{Endpoints: []netip.AddrPort{wantPong.Src, wantPong.Src}}

	tests := []struct {
		name    string
		in      []byte
		want    Message
		wantErr string // substring; "" means success
	}{
		{"ping", cat(ver(1, 1), tx, nk), wantPing, ""},
		{"pong", cat(ver(2, 1), tx, addr), wantPong, ""},
		{"cmm two", cat(ver(3, 1), []byte{2}, addr, addr), wantCMM, ""},
		{"cmm none", cat(ver(3, 1), []byte{0}), &CallMeMaybe{}, ""},
		{"newer ping with extra field", cat(ver(1, 9), tx, nk, []byte{1, 2, 3}), wantPing, ""},
		{"newer pong exact", cat(ver(2, 2), tx, addr), wantPong, ""},
		{"newer cmm with extra", cat(ver(3, 7), []byte{2}, addr, addr, []byte("future")), wantCMM, ""},

		{"empty", nil, nil, "shorter than"},
		{"type only", []byte{1}, nil, "shorter than"},
		{"version zero", cat(ver(1, 0), tx, nk), nil, "version 0"},
		{"unknown type 0", cat(ver(0, 1), tx, nk), nil, "unknown message type 0"},
		{"unknown type 4", cat(ver(4, 1), tx), nil, "unknown message type 4"},
		{"unknown type 255", ver(255, 1), nil, "unknown message type 255"},
		{"ping short", cat(ver(1, 1), tx, nk[:31]), nil, "ping body is 43 bytes, too short"},
		{"ping long", cat(ver(1, 1), tx, nk, []byte{0}), nil, "ping body is 45 bytes, too long"},
		{"newer ping short", cat(ver(1, 2), tx), nil, "too short"},
		{"pong short", cat(ver(2, 1), tx), nil, "pong body is 12 bytes, too short"},
		{"pong long", cat(ver(2, 1), tx, addr, addr), nil, "too long"},
		{"cmm no count", ver(3, 1), nil, "endpoint count"},
		{"cmm count too big", cat(ver(3, 1), []byte{33}), nil, "33 endpoints"},
		{"cmm missing endpoint", cat(ver(3, 1), []byte{2}, addr), nil, "too short"},
		{"cmm extra bytes", cat(ver(3, 1), []byte{1}, addr, []byte{0}), nil, "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decode(tt.in)
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("decode err = %v, want ErrMalformed containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decode = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestEncodeLayout(t *testing.T) {
	// Pin the wire format: a change here breaks compatibility with
	// deployed nodes and needs a new Version.
	tx := [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	got := encode(&Pong{TxID: tx, Src: netip.MustParseAddrPort("192.0.2.1:4660")})
	want := "0201" + "0102030405060708090a0b0c" + "00000000000000000000ffffc0000201" + "1234"
	if fmt.Sprintf("%x", got) != want {
		t.Errorf("pong encoding = %x, want %s", got, want)
	}
	if n := len(Seal(key.NewDisco(), key.NewDisco().Public(), &Ping{})); n != MinPacketLen+msgHead+pingBody {
		t.Errorf("sealed ping is %d bytes, want %d", n, MinPacketLen+msgHead+pingBody)
	}
}

// wgPacket returns a WireGuard-shaped packet: type byte, three zeros, rest.
func wgPacket(typ byte, n int) []byte {
	p := make([]byte, n)
	rand.Read(p)
	p[0], p[1], p[2], p[3] = typ, 0, 0, 0
	return p
}

func TestLooks(t *testing.T) {
	stunReq := []byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	tests := []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"sealed", Seal(key.NewDisco(), key.NewDisco().Public(), &Ping{}), true},
		{"magic only", []byte(magic), true},
		{"empty", nil, false},
		{"magic prefix cut", []byte(magic[:MagicLen-1]), false},
		{"wg initiation", wgPacket(1, 148), false},
		{"wg response", wgPacket(2, 92), false},
		{"wg cookie", wgPacket(3, 64), false},
		{"wg transport", wgPacket(4, 32), false},
		{"stun binding request", stunReq, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Looks(tt.pkt); got != tt.want {
				t.Errorf("Looks = %v, want %v", got, tt.want)
			}
		})
	}
	// The magic itself must not be mistaken for WireGuard or STUN.
	if m := magic[0]; m >= 1 && m <= 4 {
		t.Errorf("magic starts with WireGuard type %d", m)
	}
	if magic[0]&0xc0 == 0 {
		t.Error("magic's top two bits are 00, like STUN")
	}
	// Random bytes essentially never look like disco.
	buf := make([]byte, 64)
	for range 10000 {
		rand.Read(buf)
		if Looks(buf) && string(buf[:MagicLen]) != magic {
			t.Fatal("random packet Looks like disco without the magic")
		}
	}
}

func TestNoSecretsInStrings(t *testing.T) {
	priv := key.NewDisco()
	sk := Shared(priv, key.NewDisco().Public())
	secret := fmt.Sprintf("%x", sk.k[:])
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "k", sk)
	for _, s := range []string{sk.String(), fmt.Sprintf("%v", sk), fmt.Sprintf("%+v", sk), fmt.Sprintf("%#v", sk), logs.String()} {
		if strings.Contains(s, secret) || strings.Contains(s, fmt.Sprint(sk.k)) {
			t.Errorf("secret leaked in %q", s)
		}
	}
}

func TestMessageStrings(t *testing.T) {
	for name, m := range sampleMessages() {
		if s := fmt.Sprint(m); s == "" {
			t.Errorf("%s: empty String", name)
		}
	}
}

func TestSealPanicsOnNil(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Seal(nil) did not panic")
		}
	}()
	Seal(key.NewDisco(), key.NewDisco().Public(), (*Ping)(nil))
}

func TestCanonical(t *testing.T) {
	le := func(first, fill, last byte) [32]byte {
		var k [32]byte
		for i := range k {
			k[i] = fill
		}
		k[0], k[31] = first, last
		return k
	}
	tests := []struct {
		name string
		raw  [32]byte
		want bool
	}{
		{"zero", [32]byte{}, true},
		{"p-1", le(0xec, 0xff, 0x7f), true},
		{"p", le(0xed, 0xff, 0x7f), false},
		{"2^255-1", le(0xff, 0xff, 0x7f), false},
		{"top bit", le(0x01, 0x00, 0x80), false},
		{"high but below p", le(0xff, 0xff, 0x7e), true},
		{"generated", key.NewDisco().Public().Raw(), true},
	}
	for _, tt := range tests {
		if got := canonical(tt.raw); got != tt.want {
			t.Errorf("%s: canonical = %v, want %v", tt.name, got, tt.want)
		}
	}
}
