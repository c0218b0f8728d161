package credential

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Password length limits. The minimum is counted in characters (runes),
// the maximum in bytes.
const (
	MinPasswordLen = 12
	MaxPasswordLen = 1024
)

// Password errors.
var (
	ErrPasswordTooShort = fmt.Errorf("password too short: use at least %d characters (a passphrase of a few words is easiest to remember)", MinPasswordLen)
	ErrPasswordTooLong  = fmt.Errorf("password too long: use at most %d bytes", MaxPasswordLen)
	// ErrMalformedHash means a stored password hash is not an argon2id PHC
	// string this package accepts; the password must be set again.
	ErrMalformedHash = errors.New("malformed password hash: set the password again")
)

// argonParams are the cost parameters and sizes of one argon2id hash.
type argonParams struct {
	memory  uint32 // KiB
	time    uint32 // passes
	threads uint8
	saltLen int
	keyLen  int
}

// defaultParams are used for new hashes: the second recommended option of
// RFC 9106 section 4 (64 MiB, 3 passes, 4 lanes), a 16-byte salt and a
// 32-byte tag. Tests lower them; nothing else changes them.
var defaultParams = argonParams{memory: 64 * 1024, time: 3, threads: 4, saltLen: 16, keyLen: 32}

// Bounds on parameters read from a stored hash, so that a hostile or
// corrupted hash cannot make CheckPassword allocate gigabytes, spin for
// minutes or start hundreds of goroutines.
const (
	maxMemory  = 256 * 1024 // KiB (256 MiB)
	maxTime    = 16
	maxThreads = 16
	minSaltLen = 8
	maxSaltLen = 64
	minKeyLen  = 16
	maxKeyLen  = 64
	// maxPHCLen bounds the whole string; a valid one is well under it.
	maxPHCLen = 256
)

// argonVersion is the only argon2 version accepted (0x13).
const argonVersion = argon2.Version

var b64 = base64.RawStdEncoding

// HashPassword returns the argon2id hash of password as a PHC string
// "$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<tag>" (unpadded
// standard base64). Passwords shorter than MinPasswordLen characters or
// longer than MaxPasswordLen bytes are rejected.
func HashPassword(password string) (string, error) {
	if err := checkPasswordLen(password); err != nil {
		return "", err
	}
	return hashWith(password, defaultParams)
}

// hashWith hashes password with the parameters p.
func hashWith(password string, p argonParams) (string, error) {
	salt := make([]byte, p.saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: read random salt: %w", err)
	}
	tag := argon2.IDKey([]byte(password), salt, p.time, p.memory, p.threads, uint32(p.keyLen))
	return formatPHC(p, salt, tag), nil
}

func checkPasswordLen(password string) error {
	switch {
	case len(password) > MaxPasswordLen:
		return ErrPasswordTooLong
	case utf8.RuneCountInString(password) < MinPasswordLen:
		return ErrPasswordTooShort
	}
	return nil
}

// CheckPassword reports whether password matches the PHC hash phc, comparing
// in constant time. It returns an error wrapping ErrMalformedHash if phc is
// not a well-formed argon2id hash within the accepted parameter bounds; it
// never panics, whatever phc holds.
func CheckPassword(phc, password string) (bool, error) {
	p, salt, tag, err := parsePHC(phc)
	if err != nil {
		return false, err
	}
	if len(password) > MaxPasswordLen {
		// HashPassword never accepted it, so it cannot match.
		return false, nil
	}
	got := argon2.IDKey([]byte(password), salt, p.time, p.memory, p.threads, uint32(len(tag)))
	return subtle.ConstantTimeCompare(got, tag) == 1, nil
}

func formatPHC(p argonParams, salt, tag []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argonVersion, p.memory, p.time, p.threads, b64.EncodeToString(salt), b64.EncodeToString(tag))
}

// parsePHC splits and validates an argon2id PHC string. The format is
// strict: exactly the fields HashPassword writes, in its order.
func parsePHC(phc string) (p argonParams, salt, tag []byte, err error) {
	bad := func(why string) error { return fmt.Errorf("%w (%s)", ErrMalformedHash, why) }
	if len(phc) > maxPHCLen {
		return p, nil, nil, bad("too long")
	}
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[0] != "" {
		return p, nil, nil, bad("want $argon2id$v=19$m=…,t=…,p=…$salt$hash")
	}
	if parts[1] != "argon2id" {
		return p, nil, nil, bad("not argon2id")
	}
	if v, ok := strings.CutPrefix(parts[2], "v="); !ok {
		return p, nil, nil, bad("missing version")
	} else if n, err := parseUint(v, 32); err != nil || n != argonVersion {
		return p, nil, nil, bad("unsupported version")
	}
	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return p, nil, nil, bad("want parameters m, t and p")
	}
	var vals [3]uint64
	for i, name := range []string{"m=", "t=", "p="} {
		v, ok := strings.CutPrefix(fields[i], name)
		if !ok {
			return p, nil, nil, bad("want parameters m, t and p in that order")
		}
		if vals[i], err = parseUint(v, 32); err != nil {
			return p, nil, nil, bad("bad parameter " + name[:1])
		}
	}
	m, t, th := vals[0], vals[1], vals[2]
	switch {
	case th < 1 || th > maxThreads:
		return p, nil, nil, bad("parallelism out of range")
	case t < 1 || t > maxTime:
		return p, nil, nil, bad("time cost out of range")
	case m < 8*th || m > maxMemory: // RFC 9106: at least 8 KiB per lane
		return p, nil, nil, bad("memory cost out of range")
	}
	p = argonParams{memory: uint32(m), time: uint32(t), threads: uint8(th)}
	if salt, err = decodeB64(parts[4], minSaltLen, maxSaltLen); err != nil {
		return p, nil, nil, bad("salt: " + err.Error())
	}
	if tag, err = decodeB64(parts[5], minKeyLen, maxKeyLen); err != nil {
		return p, nil, nil, bad("hash: " + err.Error())
	}
	p.saltLen, p.keyLen = len(salt), len(tag)
	return p, salt, tag, nil
}

// parseUint parses a plain decimal number (digits only, no sign, no
// leading zero) of at most bits bits.
func parseUint(s string, bits int) (uint64, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, errors.New("not a canonical number")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("not a number")
		}
	}
	return strconv.ParseUint(s, 10, bits)
}

// decodeB64 decodes unpadded standard base64 of between lo and hi bytes,
// refusing non-canonical encodings: no padding, no whitespace (the standard
// decoder silently skips \r and \n, even in strict mode), no stray bits, and
// the decoded value must encode back to exactly s.
func decodeB64(s string, lo, hi int) ([]byte, error) {
	if n := b64.DecodedLen(len(s)); n < lo || n > hi {
		return nil, fmt.Errorf("want %d to %d bytes", lo, hi)
	}
	for i := 0; i < len(s); i++ {
		if !isB64Char(s[i]) {
			return nil, errors.New("bad base64 character")
		}
	}
	b, err := b64.Strict().DecodeString(s)
	if err != nil {
		return nil, errors.New("bad base64")
	}
	if len(b) < lo || len(b) > hi {
		return nil, fmt.Errorf("want %d to %d bytes", lo, hi)
	}
	if b64.EncodeToString(b) != s {
		return nil, errors.New("non-canonical base64")
	}
	return b, nil
}

// isB64Char reports whether c is in the standard base64 alphabet (without
// the padding character).
func isB64Char(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/'
}
