package locallogin

import (
	"context"
	"errors"
	"fmt"

	"github.com/warrenmesh/warren/coordinator/store"
)

// SetPassword hashes password (see HashPassword for the length rules) and
// stores it as the local password of the user called name. It does not
// audit: the caller (CLI or admin API) knows who acted.
func SetPassword(ctx context.Context, st store.Store, name, password string) error {
	phc, err := HashPassword(password)
	if err != nil {
		return fmt.Errorf("set password for %s: %w", name, err)
	}
	err = st.Tx(ctx, func(q store.Queries) error {
		u, err := q.GetUserByName(ctx, name)
		if err != nil {
			return err
		}
		u.PasswordHash = phc
		return q.UpdateUser(ctx, u)
	})
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("set password for %s: no such user (create it first)", name)
	}
	if err != nil {
		return fmt.Errorf("set password for %s: %w", name, err)
	}
	return nil
}

// EnrollTOTP gives the user called name a fresh TOTP secret, replacing any
// earlier one, and returns the secret and its otpauth:// URL. They are shown
// once, to be put into an authenticator app; the caller must not log them.
// An empty issuer means DefaultIssuer.
func EnrollTOTP(ctx context.Context, st store.Store, name, issuer string) (secret, url string, err error) {
	if issuer == "" {
		issuer = DefaultIssuer
	}
	err = st.Tx(ctx, func(q store.Queries) error {
		u, err := q.GetUserByName(ctx, name)
		if err != nil {
			return err
		}
		if secret, url, err = NewTOTP(issuer, u.Name); err != nil {
			return err
		}
		u.TOTPSecret = secret
		return q.UpdateUser(ctx, u)
	})
	if errors.Is(err, store.ErrNotFound) {
		return "", "", fmt.Errorf("enroll TOTP for %s: no such user (create it first)", name)
	}
	if err != nil {
		return "", "", fmt.Errorf("enroll TOTP for %s: %w", name, err)
	}
	return secret, url, nil
}
