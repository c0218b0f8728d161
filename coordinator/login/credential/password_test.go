package credential

import (
	"errors"
	"strings"
	"testing"
)

func TestHashPasswordRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		password string
	}{
		{"ascii", "correct horse"},
		{"exactly 12 runes, multibyte", "äöüßéèêëîïôû"},
		{"maximum length", strings.Repeat("x", MaxPasswordLen)},
		{"spaces kept", "  padded password  "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			phc, err := HashPassword(tt.password)
			if err != nil {
				t.Fatalf("HashPassword: %v", err)
			}
			if strings.Contains(phc, tt.password) {
				t.Fatal("hash contains the password")
			}
			ok, err := CheckPassword(phc, tt.password)
			if err != nil || !ok {
				t.Fatalf("CheckPassword(right password) = %v, %v; want true, nil", ok, err)
			}
			for _, wrong := range []string{tt.password + "x", strings.TrimSpace(tt.password), "", strings.ToUpper(tt.password)} {
				if wrong == tt.password {
					continue
				}
				if ok, err := CheckPassword(phc, wrong); err != nil || ok {
					t.Errorf("CheckPassword(%q) = %v, %v; want false, nil", wrong, ok, err)
				}
			}
			if ok, err := CheckPassword(phc, tt.password+strings.Repeat("y", MaxPasswordLen)); err != nil || ok {
				t.Errorf("CheckPassword(too long) = %v, %v; want false, nil", ok, err)
			}
		})
	}
}

func TestHashPasswordRejects(t *testing.T) {
	tests := []struct {
		name     string
		password string
		want     error
	}{
		{"empty", "", ErrPasswordTooShort},
		{"11 characters", "abcdefghijk", ErrPasswordTooShort},
		{"11 runes in more than 12 bytes", "äöüßéèêëîïô", ErrPasswordTooShort},
		{"too long", strings.Repeat("x", MaxPasswordLen+1), ErrPasswordTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			phc, err := HashPassword(tt.password)
			if !errors.Is(err, tt.want) || phc != "" {
				t.Fatalf("HashPassword = %q, %v; want error %v", phc, err, tt.want)
			}
		})
	}
}

func TestHashPasswordFormat(t *testing.T) {
	a, err := hashWith("correct horse battery", productionParams)
	if err != nil {
		t.Fatal(err)
	}
	const prefix = "$argon2id$v=19$m=65536,t=3,p=4$"
	if !strings.HasPrefix(a, prefix) {
		t.Fatalf("hash %q does not start with %q", a, prefix)
	}
	if ok, err := CheckPassword(a, "correct horse battery"); err != nil || !ok {
		t.Fatalf("CheckPassword with production parameters = %v, %v", ok, err)
	}
	b, err := hashWith("correct horse battery", productionParams)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
	p, salt, tag, err := parsePHC(a)
	if err != nil {
		t.Fatal(err)
	}
	if p.memory != productionParams.memory || p.time != productionParams.time || p.threads != productionParams.threads ||
		len(salt) != 16 || len(tag) != 32 {
		t.Fatalf("parsed %+v, salt %d bytes, tag %d bytes", p, len(salt), len(tag))
	}
	if got := formatPHC(p, salt, tag); got != a {
		t.Fatalf("formatPHC(parsePHC(h)) = %q, want %q", got, a)
	}
}

// goodSalt and goodTag are valid encodings (16 and 32 bytes).
const (
	goodSalt = "c2FsdHNhbHRzYWx0c2FsdA"
	goodTag  = "dGFndGFndGFndGFndGFndGFndGFndGFndGFndGFndGE"
)

func TestCheckPasswordMalformed(t *testing.T) {
	tests := []struct{ name, phc string }{
		{"empty", ""},
		{"not phc", "hunter2"},
		{"argon2i", "$argon2i$v=19$m=1024,t=1,p=1$" + goodSalt + "$" + goodTag},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"old version", "$argon2id$v=16$m=1024,t=1,p=1$" + goodSalt + "$" + goodTag},
		{"no version", "$argon2id$m=1024,t=1,p=1$" + goodSalt + "$" + goodTag},
		{"memory 4 GiB", "$argon2id$v=19$m=4294967295,t=1,p=1$" + goodSalt + "$" + goodTag},
		{"memory 1 GiB", "$argon2id$v=19$m=1048576,t=1,p=1$" + goodSalt + "$" + goodTag},
		{"memory just over the cap", "$argon2id$v=19$m=262145,t=1,p=1$" + goodSalt + "$" + goodTag},
		{"memory beyond uint32", "$argon2id$v=19$m=99999999999,t=1,p=1$" + goodSalt + "$" + goodTag},
		{"memory below 8 KiB per lane", "$argon2id$v=19$m=15,t=1,p=2$" + goodSalt + "$" + goodTag},
		{"zero time", "$argon2id$v=19$m=1024,t=0,p=1$" + goodSalt + "$" + goodTag},
		{"huge time", "$argon2id$v=19$m=1024,t=1000000,p=1$" + goodSalt + "$" + goodTag},
		{"zero lanes", "$argon2id$v=19$m=1024,t=1,p=0$" + goodSalt + "$" + goodTag},
		{"255 lanes", "$argon2id$v=19$m=262144,t=1,p=255$" + goodSalt + "$" + goodTag},
		{"lanes beyond uint8", "$argon2id$v=19$m=1024,t=1,p=256$" + goodSalt + "$" + goodTag},
		{"negative", "$argon2id$v=19$m=-1024,t=1,p=1$" + goodSalt + "$" + goodTag},
		{"plus sign", "$argon2id$v=19$m=+1024,t=1,p=1$" + goodSalt + "$" + goodTag},
		{"leading zero", "$argon2id$v=19$m=01024,t=1,p=1$" + goodSalt + "$" + goodTag},
		{"hex", "$argon2id$v=19$m=0x400,t=1,p=1$" + goodSalt + "$" + goodTag},
		{"empty value", "$argon2id$v=19$m=,t=1,p=1$" + goodSalt + "$" + goodTag},
		{"parameters out of order", "$argon2id$v=19$t=1,m=1024,p=1$" + goodSalt + "$" + goodTag},
		{"extra parameter", "$argon2id$v=19$m=1024,t=1,p=1,keyid=x$" + goodSalt + "$" + goodTag},
		{"missing parameter", "$argon2id$v=19$m=1024,t=1$" + goodSalt + "$" + goodTag},
		{"missing salt", "$argon2id$v=19$m=1024,t=1,p=1$" + goodTag},
		{"empty salt", "$argon2id$v=19$m=1024,t=1,p=1$$" + goodTag},
		{"short salt", "$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$" + goodTag},
		{"short hash", "$argon2id$v=19$m=1024,t=1,p=1$" + goodSalt + "$dGFn"},
		{"long hash", "$argon2id$v=19$m=1024,t=1,p=1$" + goodSalt + "$" + strings.Repeat("A", 100)},
		{"padded base64", "$argon2id$v=19$m=1024,t=1,p=1$" + goodSalt + "==$" + goodTag},
		{"url base64", "$argon2id$v=19$m=1024,t=1,p=1$" + goodSalt + "$" + goodTag[:40] + "-_A"},
		{"non-canonical base64", "$argon2id$v=19$m=1024,t=1,p=1$" + goodSalt + "$" + goodTag[:len(goodTag)-1] + "F"},
		{"trailing dollar", "$argon2id$v=19$m=1024,t=1,p=1$" + goodSalt + "$" + goodTag + "$"},
		{"no leading dollar", "argon2id$v=19$m=1024,t=1,p=1$" + goodSalt + "$" + goodTag},
		{"too long", "$argon2id$v=19$m=1024,t=1,p=1$" + goodSalt + "$" + goodTag + strings.Repeat("A", 300)},
		{"nul bytes", "$argon2id$v=19$m=1024\x00,t=1,p=1$" + goodSalt + "$" + goodTag},
		// The standard decoder skips \r and \n; an accepted hash must be
		// exactly the encoding HashPassword writes.
		{"carriage return in salt", "$argon2id$v=19$m=1024,t=1,p=1$" + goodSalt[:12] + "\r" + goodSalt[12:] + "$" + goodTag},
		{"newline in hash", "$argon2id$v=19$m=1024,t=1,p=1$" + goodSalt + "$" + goodTag[:20] + "\n" + goodTag[20:]},
		{"trailing newline", "$argon2id$v=19$m=1024,t=1,p=1$" + goodSalt + "$" + goodTag + "\n"},
		{"space in salt", "$argon2id$v=19$m=1024,t=1,p=1$" + goodSalt[:12] + " " + goodSalt[12:] + "$" + goodTag},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := CheckPassword(tt.phc, "correct horse battery")
			if ok || !errors.Is(err, ErrMalformedHash) {
				t.Fatalf("CheckPassword = %v, %v; want false, ErrMalformedHash", ok, err)
			}
		})
	}
}

// TestParseBounds checks the largest parameters accepted, without hashing.
func TestParseBounds(t *testing.T) {
	tests := []struct {
		name   string
		params string
		ok     bool
	}{
		{"largest accepted", "m=262144,t=16,p=16", true},
		{"smallest accepted", "m=8,t=1,p=1", true},
		{"8 KiB per lane", "m=128,t=1,p=16", true},
		{"memory over the cap", "m=262145,t=16,p=16", false},
		{"time over the cap", "m=262144,t=17,p=16", false},
		{"lanes over the cap", "m=262144,t=16,p=17", false},
		{"too little memory for the lanes", "m=127,t=1,p=16", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _, _, err := parsePHC("$argon2id$v=19$" + tt.params + "$" + goodSalt + "$" + goodTag)
			if (err == nil) != tt.ok {
				t.Fatalf("parsePHC = %+v, %v; want ok=%v", p, err, tt.ok)
			}
			if err == nil && uint64(p.memory)*1024 > 256<<20 {
				t.Fatalf("accepted %d KiB of memory", p.memory)
			}
		})
	}
}

// FuzzCheckPassword feeds hostile hash strings to CheckPassword: it must
// never panic, must reject what parsePHC rejects, and what it accepts must
// be in canonical form (so one password has exactly one accepted encoding
// per salt and parameters).
func FuzzCheckPassword(f *testing.F) {
	valid, err := HashPassword("correct horse battery")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid, "correct horse battery")
	f.Add(valid, "wrong")
	f.Add("$argon2id$v=19$m=1024,t=1,p=1$"+goodSalt+"$"+goodTag, "x")
	f.Add("$argon2id$v=19$m=4294967295,t=4294967295,p=255$"+goodSalt+"$"+goodTag, "x")
	f.Add("$argon2id$v=19$m=8,t=1,p=1$$", "")
	f.Add("$$$$$", "")
	f.Fuzz(func(t *testing.T, phc, password string) {
		p, salt, tag, perr := parsePHC(phc)
		if perr == nil {
			if got := formatPHC(p, salt, tag); got != phc {
				t.Fatalf("accepted non-canonical %q (canonical %q)", phc, got)
			}
			if p.memory > 4096 || p.time > 2 {
				return // accepted and bounded; too slow to hash on every fuzz input
			}
		}
		ok, err := CheckPassword(phc, password)
		if (err != nil) != (perr != nil) {
			t.Fatalf("CheckPassword error %v, parse error %v", err, perr)
		}
		if err != nil && (ok || !errors.Is(err, ErrMalformedHash)) {
			t.Fatalf("CheckPassword = %v, %v on a malformed hash", ok, err)
		}
		if phc == valid && ok != (password == "correct horse battery") {
			t.Fatalf("CheckPassword(valid, %q) = %v", password, ok)
		}
	})
}
