package auth

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/store"
)

func TestNewSecret(t *testing.T) {
	a, ha, da := NewSecret(AuthKeyPrefix)
	b, hb, _ := NewSecret(AuthKeyPrefix)
	if a == b || bytes.Equal(ha, hb) {
		t.Fatal("two secrets are equal")
	}
	if !strings.HasPrefix(a, AuthKeyPrefix) || !strings.HasPrefix(a, da) || len(da) != DisplayLen {
		t.Fatalf("secret %q display %q", a, da)
	}
	if !bytes.Equal(Hash(a), ha) {
		t.Fatal("hash not reproducible")
	}
	if err := CheckFormat(a, AuthKeyPrefix); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "wpk_", "wak_" + a[4:], a + "x"} {
		if err := CheckFormat(bad, AuthKeyPrefix); !errors.Is(err, ErrUnknownKey) {
			t.Errorf("CheckFormat(%q) = %v", bad, err)
		}
	}
}

func TestCheckAuthKey(t *testing.T) {
	now := time.Unix(1000, 0)
	tests := []struct {
		name string
		key  store.AuthKey
		want error
	}{
		{"fresh single-use", store.AuthKey{}, nil},
		{"used single-use", store.AuthKey{UsedCount: 1}, ErrKeyUsed},
		{"used reusable", store.AuthKey{Reusable: true, UsedCount: 5}, nil},
		{"revoked", store.AuthKey{Revoked: true}, ErrKeyRevoked},
		{"expired", store.AuthKey{Expiration: now}, ErrKeyExpired},
		{"not yet expired", store.AuthKey{Expiration: now.Add(time.Second)}, nil},
	}
	for _, tt := range tests {
		if err := CheckAuthKey(tt.key, now); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}
