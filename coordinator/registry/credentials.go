package registry

import (
	"context"
	"errors"
	"fmt"

	"github.com/warrenmesh/warren/coordinator/locallogin"
	"github.com/warrenmesh/warren/coordinator/store"
)

// SetUserPassword sets the local-login password of user id (admins, or the
// user themselves). The password is hashed here and never logged or
// audited; the audit event records only that it changed.
func (r *Registry) SetUserPassword(ctx context.Context, a Actor, id store.UserID, password string) error {
	err := a.may(id)
	var u store.User
	if err == nil {
		u, err = r.st.GetUser(ctx, id)
	}
	if err == nil {
		err = locallogin.SetPassword(ctx, r.st, u.Name, password)
		if errors.Is(err, locallogin.ErrPasswordTooShort) || errors.Is(err, locallogin.ErrPasswordTooLong) {
			err = fmt.Errorf("%w: %w", ErrBadRequest, err)
		}
	}
	return r.record(ctx, a, "user.password", fmt.Sprintf("user:%d", id), nil, err)
}

// EnrollUserTOTP gives user id (admins, or the user themselves) a fresh
// TOTP secret for local login and returns it with its otpauth:// URL, to
// be shown once. Neither is logged or audited.
func (r *Registry) EnrollUserTOTP(ctx context.Context, a Actor, id store.UserID, issuer string) (secret, url string, err error) {
	err = a.may(id)
	var u store.User
	if err == nil {
		u, err = r.st.GetUser(ctx, id)
	}
	if err == nil {
		secret, url, err = locallogin.EnrollTOTP(ctx, r.st, u.Name, issuer)
	}
	if err := r.record(ctx, a, "user.totp-enroll", fmt.Sprintf("user:%d", id), nil, err); err != nil {
		return "", "", err
	}
	return secret, url, nil
}
