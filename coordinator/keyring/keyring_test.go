package keyring

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/coordinator/keyfile"
)

func TestSealOpen(t *testing.T) {
	r := New()
	ad1, ad2 := []byte("users.totp_secret:1"), []byte("users.totp_secret:2")
	sealed, err := r.Seal([]byte("JBSWY3DPEHPK3PXP"), ad1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sealed, fmt.Sprintf("wsec1:%d:", r.IDs()[0])) || strings.Contains(sealed, "JBSWY3DPEHPK3PXP") || !r.Sealed(sealed) || !r.Current(sealed) {
		t.Fatalf("sealed %q", sealed)
	}
	again, _ := r.Seal([]byte("JBSWY3DPEHPK3PXP"), ad1)
	if again == sealed {
		t.Fatal("two seals of one value are equal (nonce reused?)")
	}
	plain, err := r.Open(sealed, ad1)
	if err != nil || string(plain) != "JBSWY3DPEHPK3PXP" {
		t.Fatalf("open: %q, %v", plain, err)
	}
	// A value sealed for user 1 does not open for user 2.
	if _, err := r.Open(sealed, ad2); err == nil {
		t.Fatal("opened for another place")
	}
	// Nor does an altered one, nor one from another ring.
	box := []byte(sealed)
	box[len(box)-3] ^= 'A' ^ 'B'
	if _, err := r.Open(string(box), ad1); err == nil {
		t.Fatal("opened an altered value")
	}
	if _, err := New().Open(sealed, ad1); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("another ring opened it, or failed to say why not: %v", err)
	}
	if r.Sealed("plain text") || r.Current("plain text") {
		t.Fatal("plaintext taken for sealed")
	}
}

func TestRotate(t *testing.T) {
	old := New()
	ad := []byte("users.refresh_token:7")
	sealed, _ := old.Seal([]byte("refresh"), ad)
	r := old.Rotate()
	if len(r.IDs()) != 2 || r.IDs()[0] != old.IDs()[0] || len(old.IDs()) != 1 {
		t.Fatalf("ids %v (old ring %v)", r.IDs(), old.IDs())
	}
	// Values sealed before the rotation still open, and are not current.
	if p, err := r.Open(sealed, ad); err != nil || string(p) != "refresh" || r.Current(sealed) {
		t.Fatalf("old value after rotate: %q, %v, current %v", p, err, r.Current(sealed))
	}
	resealed, _ := r.Seal([]byte("refresh"), ad)
	if !strings.HasPrefix(resealed, fmt.Sprintf("wsec1:%d:", r.IDs()[1])) || !r.Current(resealed) {
		t.Fatalf("new value %q", resealed)
	}
	dropped := r.DropOld()
	if _, err := dropped.Open(sealed, ad); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("old value after drop: %v", err)
	}
	if p, err := dropped.Open(resealed, ad); err != nil || string(p) != "refresh" {
		t.Fatalf("new value after drop: %q, %v", p, err)
	}
}

func TestFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secrets.key")
	r, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := r.Seal([]byte("x"), nil)
	again, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := again.Open(sealed, nil); err != nil || string(p) != "x" {
		t.Fatalf("reloaded ring: %q, %v", p, err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	want := again.Rotate()
	must(want.Save(path))
	rotated, err := Load(path)
	must(err)
	if !slices.Equal(rotated.IDs(), want.IDs()) {
		t.Fatalf("saved ring %v", rotated.IDs())
	}
	if fi, _ := os.Stat(path); runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Fatalf("ring file mode %04o", fi.Mode().Perm())
	}
	if runtime.GOOS != "windows" {
		must(os.Chmod(path, 0o644))
		if _, err := LoadOrCreate(path); !errors.Is(err, keyfile.ErrAccessible) || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("readable ring: %v", err)
		}
	}
}

func TestParseFileRejects(t *testing.T) {
	good := string(New().marshal())
	for _, bad := range []string{
		"",
		"warren-keyring v1\n",
		"warren-keyring v2\n" + good[len(header)+1:],
		good + good[len(header)+1:],                          // the same key twice
		header + "\nkey 1 " + strings.Repeat("A", 43) + "\n", // not the key's ID
		strings.Replace(good, "key ", "key 0", 1),
		header + "\nkey 0 " + strings.Repeat("A", 43) + "\n",
		header + "\nkey 1 " + strings.Repeat("A", 42) + "\n",
		strings.TrimSuffix(good, "\n") + " extra\n",
	} {
		if _, err := ParseFile([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// FuzzParse: the sealed-value parser never panics, and what it accepts
// is canonical (prints back to the same text).
func FuzzParse(f *testing.F) {
	r := New()
	s, _ := r.Seal([]byte("seed"), []byte("ad"))
	for _, seed := range []string{s, "wsec1:1:", "wsec1::AAAA", "wsec1:01:AAAA", "wsec1:4294967296:AA", "plain", "wsec1:1:AA=\r"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, box, err := Parse(s)
		if err != nil {
			return
		}
		if again := Prefix + formatID(id) + ":" + encode(box); again != s {
			t.Fatalf("%q parsed to %d, %x, which prints as %q", s, id, box, again)
		}
		_, _ = r.Open(s, []byte("ad")) // never panics
	})
}

// FuzzParseFile: the key ring file parser never panics, and a ring it
// accepts saves to the same bytes.
func FuzzParseFile(f *testing.F) {
	f.Add(New().marshal())
	f.Add(New().Rotate().marshal())
	f.Add([]byte(header + "\nkey 1 AAAA\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseFile(b)
		if err != nil {
			return
		}
		if out := r.marshal(); string(out) != strings.TrimSuffix(string(b), "\n")+"\n" {
			t.Fatalf("%q parsed and saved as %q", b, out)
		}
	})
}
