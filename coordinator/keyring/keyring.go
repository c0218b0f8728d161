// Package keyring encrypts the secrets the coordinator must keep readable
// (OpenID refresh tokens, TOTP secrets) before they reach its database,
// with XChaCha20-Poly1305 under keys from a key ring file beside the
// coordinator key (<state-dir>/secrets.key, 0600).
//
// The ring holds one or more keys, each with a numeric ID derived from
// the key; new values are
// sealed with the newest, and every sealed value names the key that sealed
// it ("wsec1:<id>:<base64>"), so a ring gains a key (Rotate), the stored
// values are sealed again, and only then are the old keys dropped. Each
// value is bound by the AEAD's additional data to where it is stored (the
// caller passes, say, the user ID and column), so a value copied to
// another row does not open.
//
// It must never write a key anywhere but its own 0600 file, never return
// or log a key, and never implement a cipher itself.
package keyring

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
)

// Prefix starts every sealed value.
const Prefix = "wsec1:"

// ErrUnknownKey means a value was sealed with a key the ring does not hold.
var ErrUnknownKey = errors.New("sealed with a key not in the key ring")

// key is one key of a ring.
type key struct {
	id     uint32
	secret [chacha20poly1305.KeySize]byte
}

// Ring is a set of keys, the newest last. It is immutable: Rotate and Drop
// return new rings, so one may be shared between goroutines.
type Ring struct {
	keys []key
}

// New returns a ring with one new random key.
func New() *Ring {
	return (&Ring{}).Rotate()
}

// Rotate returns a ring with the keys of r and a new random one, newest.
func (r *Ring) Rotate() *Ring {
	for {
		var k key
		rand.Read(k.secret[:]) // never fails (crypto/rand)
		k.id = keyID(k.secret)
		if _, taken := r.find(k.id); !taken && k.id != 0 {
			return &Ring{keys: append(slices.Clone(r.keys), k)}
		}
	}
}

// keyID derives a key's ID from the key, so that keys of different rings
// (a lost secrets.key replaced by a new one) have different IDs: a value
// sealed under a key the ring lacks is reported as such (ErrUnknownKey)
// instead of failing to open as if it had been altered.
func keyID(secret [chacha20poly1305.KeySize]byte) uint32 {
	h := sha256.Sum256(append([]byte("warren keyring key ID\x00"), secret[:]...))
	return binary.BigEndian.Uint32(h[:4])
}

// DropOld returns a ring with only the newest key of r.
func (r *Ring) DropOld() *Ring {
	return &Ring{keys: slices.Clone(r.keys[len(r.keys)-1:])}
}

// IDs returns the IDs of the ring's keys, oldest first.
func (r *Ring) IDs() []uint32 {
	ids := make([]uint32, len(r.keys))
	for i, k := range r.keys {
		ids[i] = k.id
	}
	return ids
}

// String describes the ring without its keys.
func (r *Ring) String() string { return fmt.Sprintf("keyring%v", r.IDs()) }

func (r *Ring) newest() key { return r.keys[len(r.keys)-1] }

func (r *Ring) find(id uint32) (key, bool) {
	for _, k := range r.keys {
		if k.id == id {
			return k, true
		}
	}
	return key{}, false
}

// Seal encrypts plaintext with the newest key, bound to additional (which
// Open must be given again), and returns the text to store.
func (r *Ring) Seal(plaintext, additional []byte) (string, error) {
	k := r.newest()
	aead, err := chacha20poly1305.NewX(k.secret[:])
	if err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	rand.Read(nonce)
	box := aead.Seal(nonce, nonce, plaintext, additional)
	return Prefix + formatID(k.id) + ":" + encode(box), nil
}

// Open decrypts a value Seal returned for the same additional data.
func (r *Ring) Open(sealed string, additional []byte) ([]byte, error) {
	id, box, err := Parse(sealed)
	if err != nil {
		return nil, err
	}
	k, ok := r.find(id)
	if !ok {
		return nil, fmt.Errorf("open sealed value: key %d: %w", id, ErrUnknownKey)
	}
	aead, err := chacha20poly1305.NewX(k.secret[:])
	if err != nil {
		return nil, fmt.Errorf("open sealed value: %w", err)
	}
	if len(box) < aead.NonceSize()+aead.Overhead() {
		return nil, errors.New("open sealed value: too short")
	}
	plain, err := aead.Open(nil, box[:aead.NonceSize()], box[aead.NonceSize():], additional)
	if err != nil {
		return nil, errors.New("open sealed value: not sealed for this place, or altered")
	}
	return plain, nil
}

// Sealed reports whether s has the form of a sealed value (else it is a
// plaintext stored before values were sealed).
func (r *Ring) Sealed(s string) bool { return strings.HasPrefix(s, Prefix) }

// Current reports whether s is sealed with the ring's newest key.
func (r *Ring) Current(s string) bool {
	id, _, err := Parse(s)
	return err == nil && id == r.newest().id
}

// Parse splits a sealed value into the ID of its key and its nonce and
// ciphertext.
func Parse(sealed string) (id uint32, box []byte, err error) {
	rest, ok := strings.CutPrefix(sealed, Prefix)
	if !ok {
		return 0, nil, errors.New("not a sealed value")
	}
	idText, b64, ok := strings.Cut(rest, ":")
	if !ok {
		return 0, nil, errors.New("sealed value: no key ID")
	}
	n, err := strconv.ParseUint(idText, 10, 32)
	if err != nil || n == 0 || strconv.FormatUint(n, 10) != idText {
		return 0, nil, fmt.Errorf("sealed value: bad key ID %q", idText)
	}
	box, err = decode(b64)
	if err != nil {
		return 0, nil, fmt.Errorf("sealed value: %w", err)
	}
	return uint32(n), box, nil
}

func formatID(id uint32) string { return strconv.FormatUint(uint64(id), 10) }

func encode(box []byte) string { return base64.RawURLEncoding.EncodeToString(box) }

// decode decodes unpadded base64url, refusing every byte outside its
// alphabet: the standard decoder skips '\r' and '\n', so two texts would
// decode to one value.
func decode(s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return nil, fmt.Errorf("byte %q at %d is not base64url", c, i)
		}
	}
	return base64.RawURLEncoding.Strict().DecodeString(s)
}
