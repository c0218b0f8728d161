package credential

import (
	"encoding/base32"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// rfcSecret is the SHA-1 key of RFC 6238's test vectors ("12345678901234567890"), base32.
var rfcSecret = base32.StdEncoding.EncodeToString([]byte("12345678901234567890"))

// codeAt returns the 6-digit code of secret at t.
func codeAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totpOpts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewTOTP(t *testing.T) {
	secret, u, err := NewTOTP("Warren test", "ann@example.com")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil || len(raw) != 20 {
		t.Fatalf("secret %d bytes, %v; want 20 bytes of base32", len(raw), err)
	}
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	q := parsed.Query()
	if parsed.Scheme != "otpauth" || parsed.Host != "totp" || q.Get("secret") != secret ||
		q.Get("digits") != "6" || q.Get("period") != "30" || q.Get("algorithm") != "SHA1" ||
		q.Get("issuer") != "Warren test" || !strings.Contains(parsed.Path, "ann@example.com") {
		t.Fatalf("otpauth URL %s is not what authenticator apps expect", u)
	}
	now := time.Now()
	if !CheckTOTP(secret, codeAt(t, secret, now), now) {
		t.Fatal("fresh secret does not check")
	}
	other, _, err := NewTOTP("Warren test", "ann@example.com")
	if err != nil || other == secret {
		t.Fatalf("second secret %v, equal to the first: %v", err, other == secret)
	}
	for _, args := range [][2]string{{"", "ann"}, {"Warren", ""}} {
		if _, _, err := NewTOTP(args[0], args[1]); err == nil {
			t.Errorf("NewTOTP(%q, %q) succeeded", args[0], args[1])
		}
	}
}

func TestCheckTOTP(t *testing.T) {
	now := time.Unix(1_780_000_015, 0) // 15 s into a step
	secret, _, err := NewTOTP("Warren", "ann")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		secret string
		code   string
		now    time.Time
		want   bool
	}{
		{"RFC 6238 at 59 s", rfcSecret, "287082", time.Unix(59, 0), true},
		{"RFC 6238 at 1111111109 s", rfcSecret, "081804", time.Unix(1111111109, 0), true},
		{"RFC 6238 at 1234567890 s", rfcSecret, "005924", time.Unix(1234567890, 0), true},
		{"current code", secret, codeAt(t, secret, now), now, true},
		{"code of the previous step", secret, codeAt(t, secret, now.Add(-30*time.Second)), now, true},
		{"code of the next step", secret, codeAt(t, secret, now.Add(30*time.Second)), now, true},
		{"code two steps old", secret, codeAt(t, secret, now.Add(-60*time.Second)), now, false},
		{"code two steps ahead", secret, codeAt(t, secret, now.Add(60*time.Second)), now, false},
		{"expired long ago", secret, codeAt(t, secret, now.Add(-time.Hour)), now, false},
		{"other secret", rfcSecret, codeAt(t, secret, now), now, false},
		{"five digits", secret, codeAt(t, secret, now)[:5], now, false},
		{"seven digits", secret, codeAt(t, secret, now) + "0", now, false},
		{"letters", secret, "abcdef", now, false},
		{"unicode digits", secret, "١٢٣٤٥٦", now, false},
		{"empty code", secret, "", now, false},
		{"empty secret", "", "123456", now, false},
		{"secret not base32", "!!not base32!!", "123456", now, false},
		{"before 1970", secret, "123456", time.Unix(-100, 0), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CheckTOTP(tt.secret, tt.code, tt.now); got != tt.want {
				t.Fatalf("CheckTOTP = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMatchTOTPStep(t *testing.T) {
	now := time.Unix(1_780_000_015, 0)
	cur := TOTPStep(now)
	for d := int64(-1); d <= 1; d++ {
		at := now.Add(time.Duration(d) * 30 * time.Second)
		step, ok := MatchTOTP(rfcSecret, codeAt(t, rfcSecret, at), now)
		if !ok || step != cur+d {
			t.Errorf("offset %d: step %d, %v; want %d", d, step, ok, cur+d)
		}
	}
}
