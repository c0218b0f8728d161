package registry

import (
	"context"
	"errors"
	"fmt"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/login/credential"
	"github.com/warrenmesh/warren/coordinator/store"
)

// SetUserPassword sets the local-login password of user id (admins, or the
// user themselves). The password is hashed here and never logged or
// audited; the audit event records only that it changed.
func (r *Registry) SetUserPassword(ctx context.Context, a Actor, id store.UserID, password string) error {
	ev := a.event("user.password", fmt.Sprintf("user:%d", id), nil)
	if err := a.may(id); err != nil {
		return r.deny(ctx, ev, err)
	}
	phc, err := credential.HashPassword(password)
	if errors.Is(err, credential.ErrPasswordTooShort) || errors.Is(err, credential.ErrPasswordTooLong) {
		return r.deny(ctx, ev, fmt.Errorf("%w: %w", ErrBadRequest, err))
	} else if err != nil {
		return r.deny(ctx, ev, err)
	}
	return r.commit(ctx, ev, func(tx *audit.Tx) error {
		u, err := tx.GetUser(ctx, id)
		if err != nil {
			return err
		}
		u.PasswordHash = phc
		return tx.UpdateUser(ctx, u)
	})
}

// EnrollUserTOTP gives user id (admins, or the user themselves) a fresh
// TOTP secret for local login and returns it with its otpauth:// URL, to
// be shown once. Neither is logged or audited.
func (r *Registry) EnrollUserTOTP(ctx context.Context, a Actor, id store.UserID, issuer string) (secret, url string, err error) {
	ev := a.event("user.totp-enroll", fmt.Sprintf("user:%d", id), nil)
	if err := a.may(id); err != nil {
		return "", "", r.deny(ctx, ev, err)
	}
	if issuer == "" {
		issuer = credential.DefaultIssuer
	}
	err = r.commit(ctx, ev, func(tx *audit.Tx) error {
		u, err := tx.GetUser(ctx, id)
		if err != nil {
			return err
		}
		if secret, url, err = credential.NewTOTP(issuer, u.Name); err != nil {
			return err
		}
		u.TOTPSecret = secret
		return tx.UpdateUser(ctx, u)
	})
	if err != nil {
		return "", "", err
	}
	return secret, url, nil
}
