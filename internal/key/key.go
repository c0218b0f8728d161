// Package key provides Warren's typed Curve25519 keys: machine keys, node
// (WireGuard) keys, disco keys and the coordinator's control key.
//
// Each kind is a distinct Go type, so a node key can never be passed where a
// disco key is wanted. Public keys print and parse as "<prefix>:<hex>".
// Private keys never print their value: String and LogValue redact them, and
// only MarshalText (for the node's 0600 state file) reveals the bytes. This
// package must never log, send or persist a private key on its own.
package key

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"

	"golang.org/x/crypto/curve25519"
)

// Size is the length in bytes of every Warren key.
const Size = 32

// Kind names one family of keys. Its methods give the text prefixes.
type Kind interface {
	publicPrefix() string
	privatePrefix() string
}

// MachineKind is the kind of machine keys: a device's long-lived identity
// towards the coordinator.
type MachineKind struct{}

// NodeKind is the kind of node keys: WireGuard keys, rotated on re-auth.
type NodeKind struct{}

// DiscoKind is the kind of disco keys, which seal NAT-traversal messages.
type DiscoKind struct{}

// ControlKind is the kind of the coordinator's key, pinned by nodes for the
// Noise handshake of the control channel.
type ControlKind struct{}

// RelayKind is the kind of a DERP relay server's key: clients seal their
// handshake to it, proving they hold their node key.
type RelayKind struct{}

func (MachineKind) publicPrefix() string  { return "mkey" }
func (MachineKind) privatePrefix() string { return "privmkey" }
func (NodeKind) publicPrefix() string     { return "nodekey" }
func (NodeKind) privatePrefix() string    { return "privnodekey" }
func (DiscoKind) publicPrefix() string    { return "discokey" }
func (DiscoKind) privatePrefix() string   { return "privdiscokey" }
func (ControlKind) publicPrefix() string  { return "ckey" }
func (ControlKind) privatePrefix() string { return "privckey" }
func (RelayKind) publicPrefix() string    { return "rkey" }
func (RelayKind) privatePrefix() string   { return "privrkey" }

// Public is a Curve25519 public key of kind K. The zero value is the
// all-zero key, reported by IsZero.
type Public[K Kind] struct{ k [Size]byte }

// Private is a Curve25519 private key of kind K. Compare private keys only
// with Equal, which runs in constant time: the zero-length func array makes
// the type incomparable, so `==` on two private keys (or using one as a map
// key) is a compile error rather than a timing side channel.
type Private[K Kind] struct {
	_ [0]func() // incomparable: use Equal
	k [Size]byte
}

// Typed aliases used throughout Warren.
type (
	MachinePublic  = Public[MachineKind]
	MachinePrivate = Private[MachineKind]
	NodePublic     = Public[NodeKind]
	NodePrivate    = Private[NodeKind]
	DiscoPublic    = Public[DiscoKind]
	DiscoPrivate   = Private[DiscoKind]
	ControlPublic  = Public[ControlKind]
	ControlPrivate = Private[ControlKind]
	RelayPublic    = Public[RelayKind]
	RelayPrivate   = Private[RelayKind]
)

// New returns a fresh random private key of kind K.
func New[K Kind]() Private[K] {
	var p Private[K]
	if _, err := rand.Read(p.k[:]); err != nil {
		panic("key: crypto/rand failed: " + err.Error())
	}
	clamp(&p.k)
	return p
}

// NewMachine returns a fresh machine private key.
func NewMachine() MachinePrivate { return New[MachineKind]() }

// NewNode returns a fresh node (WireGuard) private key.
func NewNode() NodePrivate { return New[NodeKind]() }

// NewDisco returns a fresh disco private key.
func NewDisco() DiscoPrivate { return New[DiscoKind]() }

// NewControl returns a fresh coordinator control private key.
func NewControl() ControlPrivate { return New[ControlKind]() }

// NewRelay returns a fresh relay server key.
func NewRelay() RelayPrivate { return New[RelayKind]() }

func clamp(k *[Size]byte) {
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
}

// PrivateFromRaw returns the private key with the given bytes, clamped.
func PrivateFromRaw[K Kind](raw [Size]byte) Private[K] {
	p := Private[K]{k: raw}
	clamp(&p.k)
	return p
}

// PublicFromRaw returns the public key with the given bytes.
func PublicFromRaw[K Kind](raw [Size]byte) Public[K] { return Public[K]{k: raw} }

// PublicFromSlice returns the public key in b, which must be Size bytes.
func PublicFromSlice[K Kind](b []byte) (Public[K], error) {
	var p Public[K]
	if len(b) != Size {
		return p, fmt.Errorf("%s: want %d bytes, got %d", prefixOf[K](), Size, len(b))
	}
	copy(p.k[:], b)
	return p, nil
}

func prefixOf[K Kind]() string { var k K; return k.publicPrefix() }

// IsZero reports whether p is the zero key.
func (p Private[K]) IsZero() bool { return p.k == [Size]byte{} }

// Public returns the public half of p.
func (p Private[K]) Public() Public[K] {
	var pub Public[K]
	out, err := curve25519.X25519(p.k[:], curve25519.Basepoint)
	if err != nil {
		panic("key: X25519 with basepoint failed: " + err.Error())
	}
	copy(pub.k[:], out)
	return pub
}

// Raw returns the private key bytes, for handing to WireGuard or Noise.
func (p Private[K]) Raw() [Size]byte { return p.k }

// Equal reports whether p and o are the same key, in constant time.
func (p Private[K]) Equal(o Private[K]) bool {
	return subtle.ConstantTimeCompare(p.k[:], o.k[:]) == 1
}

// String redacts the key: private keys never reach logs.
func (p Private[K]) String() string {
	var k K
	return k.privatePrefix() + ":<redacted>"
}

// LogValue redacts the key for log/slog.
func (p Private[K]) LogValue() slog.Value { return slog.StringValue(p.String()) }

// MarshalText reveals the key as "<prefix>:<hex>". Use it only for the
// owner's own 0600 state file.
func (p Private[K]) MarshalText() ([]byte, error) {
	var k K
	return []byte(k.privatePrefix() + ":" + hex.EncodeToString(p.k[:])), nil
}

// UnmarshalText parses the form written by MarshalText.
func (p *Private[K]) UnmarshalText(b []byte) error {
	var k K
	raw, err := parseHex(string(b), k.privatePrefix())
	if err != nil {
		return err
	}
	*p = PrivateFromRaw[K](raw)
	return nil
}

// IsZero reports whether p is the zero key.
func (p Public[K]) IsZero() bool { return p.k == [Size]byte{} }

// Raw returns the public key bytes.
func (p Public[K]) Raw() [Size]byte { return p.k }

// String returns "<prefix>:<hex>".
func (p Public[K]) String() string {
	var k K
	return k.publicPrefix() + ":" + hex.EncodeToString(p.k[:])
}

// ShortString returns a short form for humans: "[abcdef]" of the hex.
func (p Public[K]) ShortString() string {
	return "[" + hex.EncodeToString(p.k[:3]) + "]"
}

// MarshalText returns the String form.
func (p Public[K]) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText parses the String form.
func (p *Public[K]) UnmarshalText(b []byte) error {
	var k K
	raw, err := parseHex(string(b), k.publicPrefix())
	if err != nil {
		return err
	}
	p.k = raw
	return nil
}

// ParsePublic parses "<prefix>:<hex>" for kind K.
func ParsePublic[K Kind](s string) (Public[K], error) {
	var p Public[K]
	err := p.UnmarshalText([]byte(s))
	return p, err
}

func parseHex(s, prefix string) ([Size]byte, error) {
	var raw [Size]byte
	rest, ok := strings.CutPrefix(s, prefix+":")
	if !ok {
		return raw, fmt.Errorf("key: want prefix %q", prefix+":")
	}
	if len(rest) != 2*Size {
		return raw, fmt.Errorf("key %s: want %d hex digits, got %d", prefix, 2*Size, len(rest))
	}
	if _, err := hex.Decode(raw[:], []byte(rest)); err != nil {
		return raw, fmt.Errorf("key %s: %w", prefix, err)
	}
	return raw, nil
}
