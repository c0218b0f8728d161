package oidclogin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/warrenmesh/warren/coordinator/store"
)

// How a login found its user.
const (
	userUpdated = "updated" // known by issuer + subject
	userBound   = "bound"   // an identity-less user of the same name took the identity
	userCreated = "created"
)

// userResult is the outcome of mapping an identity to a stored user.
type userResult struct {
	user store.User
	how  string // userUpdated, userBound or userCreated
	// changed is set when an existing user's groups or MFA time changed,
	// so their nodes must be republished.
	changed bool
}

// upsertUser maps a verified identity to a stored user, in one
// transaction:
//   - a user with this issuer and subject gets the current email, groups
//     and (after MFA) MFA time;
//   - otherwise a user named after the email that has no identity yet (for
//     example created by an admin beforehand) is bound to it, unless it is
//     a local account with a password;
//   - otherwise a member named after the email is created.
//
// A disabled user is refused with ErrAccountDisabled; nothing is written.
func (l *Login) upsertUser(ctx context.Context, id identity) (userResult, error) {
	now := l.cfg.Now()
	var res userResult
	err := l.cfg.Store.Tx(ctx, func(q store.Queries) error {
		res = userResult{}
		u, err := q.GetUserByIdentity(ctx, l.cfg.Issuer, id.Subject)
		switch {
		case err == nil:
			if u.Disabled {
				return disabled(u)
			}
			before := u
			apply(&u, id, now)
			res = userResult{user: u, how: userUpdated,
				changed: !slices.Equal(before.Groups, u.Groups) || !before.MFAAt.Equal(u.MFAAt)}
			if res.changed || before.Email != u.Email {
				return q.UpdateUser(ctx, u)
			}
			return nil
		case !errors.Is(err, store.ErrNotFound):
			return err
		}

		u, err = q.GetUserByName(ctx, id.Email)
		switch {
		case err == nil:
			if u.Issuer != "" || u.Subject != "" {
				return refusef("the account %s belongs to another identity (a different user ID at the identity provider); ask an admin to remove or rename it", u.Name)
			}
			if u.PasswordHash != "" {
				return refusef("%s is a local account with a password and cannot be taken over by an identity-provider login; ask an admin", u.Name)
			}
			if u.Disabled {
				return disabled(u)
			}
			u.Issuer, u.Subject = l.cfg.Issuer, id.Subject
			apply(&u, id, now)
			res = userResult{user: u, how: userBound, changed: true}
			return q.UpdateUser(ctx, u)
		case !errors.Is(err, store.ErrNotFound):
			return err
		}

		u = store.User{Name: id.Email, Role: store.RoleMember, Created: now,
			Issuer: l.cfg.Issuer, Subject: id.Subject}
		apply(&u, id, now)
		u, err = q.CreateUser(ctx, u)
		if err != nil {
			return err
		}
		res = userResult{user: u, how: userCreated}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrRefused) {
			return userResult{}, err
		}
		return userResult{}, fmt.Errorf("store the user %s: %w", id.Email, err)
	}
	return res, nil
}

// apply copies what a login says about the user onto u.
func apply(u *store.User, id identity, now time.Time) {
	u.Email = id.Email
	u.Groups = slices.Clone(id.Groups)
	if u.Groups == nil {
		u.Groups = []string{}
	}
	if id.MFA {
		u.MFAAt = now
	}
	if id.RefreshToken != "" {
		u.RefreshToken = id.RefreshToken
		u.IdPCheckedAt = now
	}
}

// disabled returns the refusal for a disabled account.
func disabled(u store.User) error {
	return fmt.Errorf("%w (%s): ask an admin to enable it", ErrAccountDisabled, u.Name)
}
