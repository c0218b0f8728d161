package keyring

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/warrenmesh/warren/coordinator/keyfile"
)

// The key ring file: a header line, then one line per key, oldest first:
//
//	warren-keyring v1
//	key <id> <base64url of 32 bytes>
const header = "warren-keyring v1"

// maxKeys bounds a ring file (rotations are rare; old keys get dropped).
const maxKeys = 1000

// LoadOrCreate reads the ring at path, creating it (0600) with one new key
// when there is none. It refuses a file other users can access.
func LoadOrCreate(path string) (*Ring, error) {
	r, err := Load(path)
	if !errors.Is(err, os.ErrNotExist) {
		return r, err
	}
	r = New()
	if err := keyfile.Create(path, r.marshal()); err != nil {
		if errors.Is(err, os.ErrExist) { // another start created it first
			return Load(path)
		}
		return nil, fmt.Errorf("create key ring %s: %w", path, err)
	}
	return r, nil
}

// Load reads the ring at path; the error wraps os.ErrNotExist when there
// is none.
func Load(path string) (*Ring, error) {
	b, err := keyfile.Read(path)
	if err != nil {
		return nil, fmt.Errorf("key ring: %w", err)
	}
	r, err := ParseFile(b)
	if err != nil {
		return nil, fmt.Errorf("key ring %s: %w", path, err)
	}
	return r, nil
}

// Save replaces the ring file at path atomically.
func (r *Ring) Save(path string) error {
	if err := keyfile.Replace(path, r.marshal()); err != nil {
		return fmt.Errorf("save key ring %s: %w", path, err)
	}
	return nil
}

func (r *Ring) marshal() []byte {
	var b bytes.Buffer
	b.WriteString(header + "\n")
	for _, k := range r.keys {
		fmt.Fprintf(&b, "key %d %s\n", k.id, base64.RawURLEncoding.EncodeToString(k.secret[:]))
	}
	return b.Bytes()
}

// ParseFile parses the contents of a ring file: at least one key, oldest
// first, each with the ID derived from it.
func ParseFile(b []byte) (*Ring, error) {
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if lines[0] != header {
		return nil, fmt.Errorf("not a key ring file (want a first line %q)", header)
	}
	r := &Ring{}
	for i, line := range lines[1:] {
		f := strings.Split(line, " ")
		if len(f) != 3 || f[0] != "key" {
			return nil, fmt.Errorf("line %d: want \"key <id> <base64>\"", i+2)
		}
		id, err := strconv.ParseUint(f[1], 10, 32)
		if err != nil || id == 0 || strconv.FormatUint(id, 10) != f[1] {
			return nil, fmt.Errorf("line %d: bad key ID %q", i+2, f[1])
		}
		if _, dup := r.find(uint32(id)); dup {
			return nil, fmt.Errorf("line %d: key %d twice", i+2, id)
		}
		secret, err := decode(f[2])
		if err != nil || len(secret) != chacha20poly1305.KeySize {
			return nil, fmt.Errorf("line %d: key %d is not %d bytes of base64url", i+2, id, chacha20poly1305.KeySize)
		}
		k := key{id: uint32(id)}
		copy(k.secret[:], secret)
		if keyID(k.secret) != k.id {
			return nil, fmt.Errorf("line %d: key %d does not match its ID (corrupt?)", i+2, id)
		}
		r.keys = append(r.keys, k)
		if len(r.keys) > maxKeys {
			return nil, fmt.Errorf("more than %d keys", maxKeys)
		}
	}
	if len(r.keys) == 0 {
		return nil, errors.New("no keys")
	}
	return r, nil
}
