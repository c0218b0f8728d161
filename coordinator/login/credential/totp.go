package credential

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters: the ones every authenticator app understands.
const (
	totpPeriod = 30 // seconds per step
	totpDigits = 6
	// TOTPSkew is how many steps on either side of now are accepted.
	TOTPSkew = 1
	// DefaultIssuer names the coordinator in authenticator apps when the
	// caller gives no issuer.
	DefaultIssuer = "Warren"
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// NewTOTP returns a fresh random TOTP secret (160 bits, base32 without
// padding) and its otpauth:// URL (SHA-1, 6 digits, 30 s) for an
// authenticator app. Both are secrets: show them to the user once, store the
// secret, log neither.
func NewTOTP(issuer, account string) (secret, otpauthURL string, err error) {
	if issuer == "" || account == "" {
		return "", "", errors.New("new TOTP secret: issuer and account name are required")
	}
	k, err := totp.Generate(totp.GenerateOpts{
		Issuer:      issuer,
		AccountName: account,
		Period:      totpPeriod,
		SecretSize:  20,
		Digits:      otp.DigitsSix,
		Algorithm:   otp.AlgorithmSHA1,
	})
	if err != nil {
		return "", "", fmt.Errorf("new TOTP secret: %w", err)
	}
	return k.Secret(), k.URL(), nil
}

// CheckTOTP reports whether code is the 6-digit code of secret at now or one
// step (30 s) before or after it. It does not prevent reuse of a code; the
// login does that.
func CheckTOTP(secret, code string, now time.Time) bool {
	_, ok := MatchTOTP(secret, code, now)
	return ok
}

// TOTPStep returns the TOTP time step that contains t.
func TOTPStep(t time.Time) int64 {
	s := t.Unix()
	if s < 0 {
		return -1
	}
	return s / totpPeriod
}

// MatchTOTP checks code against the steps around now and returns the
// (latest) step it matched, which a login records so that the code is
// never accepted again. All candidate steps are computed and compared
// in constant time, so the answer's timing does not say which step matched.
func MatchTOTP(secret, code string, now time.Time) (step int64, ok bool) {
	if secret == "" || !validCodeFormat(code) {
		return 0, false
	}
	cur := TOTPStep(now)
	step = -1
	for d := int64(-TOTPSkew); d <= TOTPSkew; d++ {
		s := cur + d
		if s < 0 {
			continue
		}
		want, err := totp.GenerateCodeCustom(secret, time.Unix(s*totpPeriod, 0), totpOpts)
		if err != nil {
			return 0, false // the secret is not base32
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			step = s
		}
	}
	return step, step >= 0
}

// validCodeFormat reports whether code is exactly six ASCII digits.
func validCodeFormat(code string) bool {
	if len(code) != totpDigits {
		return false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return false
		}
	}
	return true
}
