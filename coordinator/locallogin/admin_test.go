package locallogin

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestSetPassword(t *testing.T) {
	h := newHarness(t, nil)
	h.addUser(userSpec{name: "ann"})
	ctx := context.Background()
	tests := []struct {
		name     string
		user     string
		password string
		wantErr  error  // errors.Is
		wantText string // substring of the error
	}{
		{name: "ok", user: "ann", password: "a long enough passphrase"},
		{name: "too short", user: "ann", password: "short", wantErr: ErrPasswordTooShort},
		{name: "unknown user", user: "nobody", password: "a long enough passphrase", wantText: "no such user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := SetPassword(ctx, h.st, tt.user, tt.password)
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("SetPassword = %v, want %v", err, tt.wantErr)
				}
				return
			case tt.wantText != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantText) {
					t.Fatalf("SetPassword = %v, want an error with %q", err, tt.wantText)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			u, err := h.st.GetUserByName(ctx, tt.user)
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := CheckPassword(u.PasswordHash, tt.password); err != nil || !ok {
				t.Fatalf("stored hash does not check: %v, %v", ok, err)
			}
		})
	}
}

func TestEnrollTOTP(t *testing.T) {
	h := newHarness(t, nil)
	h.addUser(userSpec{name: "ann", password: true})
	ctx := context.Background()
	secret, otpURL, err := EnrollTOTP(ctx, h.st, "ann", "")
	if err != nil {
		t.Fatal(err)
	}
	u, err := h.st.GetUserByName(ctx, "ann")
	if err != nil {
		t.Fatal(err)
	}
	if u.TOTPSecret != secret || u.PasswordHash == "" {
		t.Fatal("secret not stored, or the password was lost")
	}
	parsed, err := url.Parse(otpURL)
	if err != nil || parsed.Query().Get("issuer") != DefaultIssuer || parsed.Query().Get("secret") != secret {
		t.Fatalf("URL %s (%v)", otpURL, err)
	}
	now := h.clock.Now()
	if !CheckTOTP(u.TOTPSecret, codeAt(t, secret, now), now) {
		t.Fatal("enrolled secret does not check")
	}
	again, _, err := EnrollTOTP(ctx, h.st, "ann", "Acme")
	if err != nil || again == secret {
		t.Fatalf("re-enrolment: %v, same secret %v", err, again == secret)
	}
	if _, _, err := EnrollTOTP(ctx, h.st, "nobody", ""); err == nil || !strings.Contains(err.Error(), "no such user") {
		t.Fatalf("EnrollTOTP(unknown) = %v", err)
	}
}
