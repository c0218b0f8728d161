// Package auth holds the coordinator's key rules: generating and hashing
// pre-auth and API keys, and deciding whether a stored pre-auth key may
// register a node. (People sign in through package login.)
//
// Secrets exist in plaintext only in the value returned to the admin once at
// creation; everything stored or logged is a SHA-256 hash or a short display
// prefix. This package must never log a secret.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/warrenmesh/warren/coordinator/store"
)

// Prefixes of Warren's secrets, so a leaked one is recognisable by secret
// scanners and a key of the wrong kind is rejected at once.
const (
	AuthKeyPrefix = "wpk_" // pre-auth key
	APIKeyPrefix  = "wak_" // admin API key
)

// DisplayLen is how many characters of a secret are kept for humans.
const DisplayLen = 12

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewSecret returns a fresh secret "<prefix><32 random base32 chars>"
// (160 bits), its hash for storage and its display prefix.
func NewSecret(prefix string) (plaintext string, hash []byte, display string) {
	var raw [20]byte
	if _, err := rand.Read(raw[:]); err != nil {
		panic("auth: crypto/rand failed: " + err.Error())
	}
	plaintext = prefix + strings.ToLower(b32.EncodeToString(raw[:]))
	return plaintext, Hash(plaintext), plaintext[:DisplayLen]
}

// Hash returns the stored form of a secret. The secrets are 160-bit random
// values, so a fast hash is enough: there is nothing to brute-force.
func Hash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// CheckFormat reports whether s looks like a secret with the given prefix,
// without touching the store.
func CheckFormat(s, prefix string) error {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return fmt.Errorf("%w: want a key starting with %q", ErrUnknownKey, prefix)
	}
	if len(rest) != 32 {
		return fmt.Errorf("%w: malformed key (want %d characters after %q)", ErrUnknownKey, 32, prefix)
	}
	return nil
}

// Pre-auth key errors. Each says what to do next.
var (
	ErrUnknownKey = errors.New("unknown key")
	ErrKeyExpired = errors.New("key expired: ask an admin for a new one")
	ErrKeyRevoked = errors.New("key revoked: ask an admin for a new one")
	ErrKeyUsed    = errors.New("single-use key already used: ask an admin for a new one, or a reusable key")
)

// CheckAuthKey decides whether k may register one more node at now.
func CheckAuthKey(k store.AuthKey, now time.Time) error {
	switch {
	case k.Revoked:
		return ErrKeyRevoked
	case !k.Expiration.IsZero() && !now.Before(k.Expiration):
		return ErrKeyExpired
	case !k.Reusable && k.UsedCount > 0:
		return ErrKeyUsed
	}
	return nil
}

// CheckAPIKey decides whether k authenticates a request at now.
func CheckAPIKey(k store.APIKey, now time.Time) error {
	switch {
	case k.Revoked:
		return ErrKeyRevoked
	case !k.Expiration.IsZero() && !now.Before(k.Expiration):
		return ErrKeyExpired
	}
	return nil
}
