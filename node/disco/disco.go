// Package disco defines Warren's NAT-traversal ("discovery") messages and
// seals them between disco keys.
//
// Disco packets share the node's WireGuard UDP socket and are also carried
// inside DERP relay frames. Three messages exist: Ping (proves a path and
// names the sender's node key), Pong (answers a ping and reports the address
// the ping came from) and CallMeMaybe (asks the peer, over the relay, to ping
// a list of endpoints now so both sides punch holes at once).
//
// A sealed packet is
//
//	magic (MagicLen) || sender disco public key (32) || nonce (24) || box
//
// where box is a NaCl box (Curve25519, XSalsa20, Poly1305) of the encoded
// message from the sender's disco key to the receiver's. Only the receiver
// can read it and a successful Open proves the sender holds the private half
// of the key in the header.
//
// This package does no I/O, keeps no state and must never log, return or
// print private or shared key material; it decides nothing about paths (the
// engine does).
package disco

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	"golang.org/x/crypto/nacl/box"

	"github.com/warrenmesh/warren/internal/key"
)

// magic starts every disco packet: "wrn" and U+1F407 (a rabbit, for the
// warren) in UTF-8. Its first byte 'w' (0x77) is not a WireGuard message
// type (1..4), and its top two bits are 01, so it never looks like STUN
// (which needs 00 and the magic cookie 0x2112A442 at offset 4).
const magic = "wrn\xf0\x9f\x90\x87"

// MagicLen is the length of the magic prefix of every disco packet.
const MagicLen = len(magic)

const (
	keyLen   = key.Size
	nonceLen = 24
	// headerLen is the cleartext before the box: magic, sender key, nonce.
	headerLen = MagicLen + keyLen + nonceLen
	// MinPacketLen is the length of the shortest well-formed sealed packet
	// (an empty box); shorter packets are rejected before any crypto.
	MinPacketLen = headerLen + box.Overhead
)

var (
	// ErrNotDisco reports a packet that is too short or lacks the magic.
	ErrNotDisco = errors.New("disco: not a disco packet")
	// ErrOpen reports a box that does not open: the packet was sealed to
	// another key, by a key other than the one in its header, or tampered
	// with on the way.
	ErrOpen = errors.New("disco: cannot open packet (wrong key or tampered)")
	// ErrMalformed reports a box that opened but whose message does not
	// decode; the wrapping error says why.
	ErrMalformed = errors.New("disco: malformed message")
)

// Looks reports whether pkt is a disco packet, that is, whether it starts
// with the magic. It does not check length or authenticity.
func Looks(pkt []byte) bool {
	return len(pkt) >= MagicLen && string(pkt[:MagicLen]) == magic
}

// Message is one of *Ping, *Pong or *CallMeMaybe. Only pointer types
// implement it, so a type switch on a value type fails to compile rather
// than silently never matching.
type Message interface{ isMessage() }

// Ping asks the receiver to answer with a Pong along the same path. The
// engine sends one per candidate path to prove it works.
type Ping struct {
	// TxID pairs the Pong with this Ping; use NewTxID.
	TxID [12]byte
	// NodeKey is the sender's node key, which lets the receiver map the
	// packet's source address to a peer before any WireGuard traffic.
	NodeKey key.NodePublic
}

// Pong answers a Ping.
type Pong struct {
	// TxID is the TxID of the Ping being answered.
	TxID [12]byte
	// Src is the address the Ping came from, as the receiver saw it: the
	// sender's endpoint on this path (its public endpoint behind a NAT).
	Src netip.AddrPort
}

// CallMeMaybe asks the receiver to ping the sender at Endpoints now. It is
// sent via the relay when a direct path is wanted, so both sides send pings
// at about the same time and open their NATs for each other.
type CallMeMaybe struct {
	// Endpoints are the sender's candidate UDP endpoints, at most
	// MaxEndpoints of them (Seal drops any beyond that).
	Endpoints []netip.AddrPort
}

func (*Ping) isMessage()        {}
func (*Pong) isMessage()        {}
func (*CallMeMaybe) isMessage() {}

// String describes the ping for logs.
func (m *Ping) String() string {
	return fmt.Sprintf("ping tx=%s node=%s", txString(m.TxID), m.NodeKey.ShortString())
}

// String describes the pong for logs.
func (m *Pong) String() string {
	return fmt.Sprintf("pong tx=%s src=%s", txString(m.TxID), m.Src)
}

// String describes the call-me-maybe for logs.
func (m *CallMeMaybe) String() string {
	return fmt.Sprintf("call-me-maybe endpoints=%v", m.Endpoints)
}

func txString(tx [12]byte) string { return hex.EncodeToString(tx[:6]) }

// NewTxID returns a fresh random transaction ID for a Ping.
func NewTxID() [12]byte {
	var tx [12]byte
	if _, err := rand.Read(tx[:]); err != nil {
		panic("disco: crypto/rand failed: " + err.Error())
	}
	return tx
}

// Seal encodes m and seals it from `from` to `to`. It panics if m is a nil
// pointer (a programming error). Each call draws a fresh random nonce.
// For repeated traffic with one peer, Shared avoids the per-call
// Curve25519 work.
func Seal(from key.DiscoPrivate, to key.DiscoPublic, m Message) []byte {
	priv, pub := from.Raw(), to.Raw()
	pkt, nonce := startPacket(from.Public(), m)
	return box.Seal(pkt, encode(m), nonce, &pub, &priv)
}

// Sender returns the sender's disco public key from the header of a sealed
// packet without opening it, so the caller can pick the right shared key.
// The key is unauthenticated until Open succeeds. A key in non-canonical
// form (which X25519 would silently reduce) fails with ErrOpen.
func Sender(pkt []byte) (key.DiscoPublic, error) {
	if len(pkt) < MinPacketLen || !Looks(pkt) {
		return key.DiscoPublic{}, ErrNotDisco
	}
	raw := [keyLen]byte(pkt[MagicLen:])
	if !canonical(raw) {
		return key.DiscoPublic{}, ErrOpen
	}
	return key.PublicFromRaw[key.DiscoKind](raw), nil
}

// canonical reports whether raw is the canonical encoding of a Curve25519
// u-coordinate: below 2^255-19. X25519 ignores the top bit and reduces
// modulo p, so without this check one key would have several encodings in
// the header and a sender could open under a key that differs from the one
// its peer knows.
func canonical(raw [keyLen]byte) bool {
	if raw[31]&0x80 != 0 {
		return false
	}
	if raw[31] != 0x7f || raw[0] < 0xed {
		return true
	}
	for _, b := range raw[1:31] {
		if b != 0xff {
			return true
		}
	}
	return false
}

// Open authenticates and decodes a sealed packet addressed to `to`. It
// returns the sender's disco key, now proven, and the message. Errors wrap
// ErrNotDisco, ErrOpen or ErrMalformed.
func Open(to key.DiscoPrivate, pkt []byte) (from key.DiscoPublic, m Message, err error) {
	from, err = Sender(pkt)
	if err != nil {
		return from, nil, err
	}
	priv, pub := to.Raw(), from.Raw()
	nonce := (*[nonceLen]byte)(pkt[MagicLen+keyLen:])
	plain, ok := box.Open(nil, pkt[headerLen:], nonce, &pub, &priv)
	if !ok {
		return key.DiscoPublic{}, nil, ErrOpen
	}
	m, err = decode(plain)
	if err != nil {
		return key.DiscoPublic{}, nil, err
	}
	return from, m, nil
}

// SharedKey is the precomputed box key between this node's disco key and
// one peer's, for sealing and opening without Curve25519 on every packet.
// Nodes ping every peer every few seconds, so the engine keeps one per peer.
// The zero value is unusable (Seal panics, Open fails). It never prints its
// secret.
type SharedKey struct {
	self, peer key.DiscoPublic
	k          [32]byte
}

// Shared precomputes the key between self (this node's private disco key)
// and peer.
func Shared(self key.DiscoPrivate, peer key.DiscoPublic) SharedKey {
	priv, pub := self.Raw(), peer.Raw()
	sk := SharedKey{self: self.Public(), peer: peer}
	box.Precompute(&sk.k, &pub, &priv)
	return sk
}

// IsZero reports whether k is the zero SharedKey.
func (k SharedKey) IsZero() bool { return k.self.IsZero() && k.peer.IsZero() }

// Peer returns the peer's disco public key.
func (k SharedKey) Peer() key.DiscoPublic { return k.peer }

// Seal encodes m and seals it to the peer; the result is the same as
// Seal(self, peer, m) would give.
func (k SharedKey) Seal(m Message) []byte {
	if k.IsZero() {
		panic("disco: Seal with zero SharedKey")
	}
	pkt, nonce := startPacket(k.self, m)
	return box.SealAfterPrecomputation(pkt, encode(m), nonce, &k.k)
}

// Open authenticates and decodes a packet from the peer. A packet whose
// header names another sender fails with ErrOpen before any crypto.
func (k SharedKey) Open(pkt []byte) (Message, error) {
	from, err := Sender(pkt)
	if err != nil {
		return nil, err
	}
	if k.IsZero() || from != k.peer {
		return nil, ErrOpen
	}
	nonce := (*[nonceLen]byte)(pkt[MagicLen+keyLen:])
	plain, ok := box.OpenAfterPrecomputation(nil, pkt[headerLen:], nonce, &k.k)
	if !ok {
		return nil, ErrOpen
	}
	return decode(plain)
}

// String names the peer and redacts the secret.
func (k SharedKey) String() string {
	return "disco.SharedKey{peer:" + k.peer.ShortString() + "}"
}

// LogValue redacts the secret for log/slog.
func (k SharedKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// GoString redacts the secret for %#v.
func (k SharedKey) GoString() string { return k.String() }

// startPacket returns a buffer holding the cleartext header (with room for
// the box of m) and the nonce inside it.
func startPacket(from key.DiscoPublic, m Message) ([]byte, *[nonceLen]byte) {
	if isNil(m) {
		panic("disco: Seal of a nil message")
	}
	pkt := make([]byte, headerLen, headerLen+encodedLen(m)+box.Overhead)
	copy(pkt, magic)
	raw := from.Raw()
	copy(pkt[MagicLen:], raw[:])
	nonce := (*[nonceLen]byte)(pkt[MagicLen+keyLen:])
	if _, err := rand.Read(nonce[:]); err != nil {
		panic("disco: crypto/rand failed: " + err.Error())
	}
	return pkt, nonce
}
