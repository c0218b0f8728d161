package registry

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/login"
	"github.com/warrenmesh/warren/coordinator/store"
)

// The registry is the login methods' login.Users: it alone writes what a
// sign-in proves, each change committed with its audit event.
var _ login.Users = (*Registry)(nil)

// How an OIDC sign-in found its user (audit detail "user").
const (
	userUpdated = "updated" // known by issuer + subject
	userBound   = "bound"   // an identity-less user of the same name took the identity
	userCreated = "created"
)

// SignIn maps what a sign-in method proved to a stored user and records
// the sign-in (action "login.<method>") in the same transaction. A
// refusal wraps login.ErrRefused and is audited.
func (r *Registry) SignIn(ctx context.Context, id login.Identity) (store.User, error) {
	ev := audit.Event{Action: "login." + id.Method, Target: "node:" + id.Machine.String(), Remote: id.Remote,
		Detail: maps.Clone(id.Detail)}
	if ev.Detail == nil {
		ev.Detail = map[string]any{}
	}
	if id.Console {
		// A sign-in to the web console: the machine key only names
		// the browser's login.
		ev.Target = "console"
		ev.Detail["console"] = true
	}
	var apply func(tx *audit.Tx) (store.User, bool, error)
	switch id.Method {
	case login.MethodLocal:
		ev.Actor = fmt.Sprintf("user:%d", id.UserID)
		ev.Detail["mfa"] = id.MFA
		apply = func(tx *audit.Tx) (store.User, bool, error) { return r.signInLocal(ctx, tx, id, &ev) }
	case login.MethodOIDC:
		ev.Actor = "user:" + id.Email
		apply = func(tx *audit.Tx) (store.User, bool, error) { return r.signInOIDC(ctx, tx, id, &ev) }
	default:
		return store.User{}, fmt.Errorf("sign in: unknown method %q", id.Method)
	}
	var u store.User
	var changed bool
	err := r.audit.Commit(ctx, func(tx *audit.Tx) error {
		var err error
		if u, changed, err = apply(tx); err != nil {
			return err
		}
		tx.Record(ev) // apply named the actor
		return nil
	})
	if err != nil {
		r.refused(ctx, ev, err)
		return store.User{}, err
	}
	if changed {
		if err := r.republishUser(ctx, u.ID); err != nil {
			r.log.Warn("republish a user's nodes after their sign-in", "user", u.ID, "err", err)
		}
	}
	return u, nil
}

// signInLocal records a local user's sign-in: the user must still be
// enabled, a TOTP code's step must be later than any the user used
// before (so a code works once, across restarts), and a second factor
// sets the MFA time.
func (r *Registry) signInLocal(ctx context.Context, tx *audit.Tx, id login.Identity, ev *audit.Event) (store.User, bool, error) {
	u, err := tx.GetUser(ctx, id.UserID)
	if err != nil {
		return store.User{}, false, err
	}
	ev.Actor = "user:" + u.Name
	if u.Disabled {
		return store.User{}, false, fmt.Errorf("%w (%s): ask an admin to enable it", login.ErrAccountDisabled, u.Name)
	}
	if id.TOTPStep > 0 {
		if id.TOTPStep <= u.TOTPLastStep {
			return store.User{}, false, login.ErrCodeReused
		}
		u.TOTPLastStep = id.TOTPStep
	}
	if id.MFA {
		u.MFAAt = r.now()
	}
	if err := tx.UpdateUser(ctx, u); err != nil {
		return store.User{}, false, err
	}
	return u, id.MFA, nil
}

// signInOIDC maps a verified OIDC identity to a stored user:
//   - a user with this issuer and subject gets the current email, groups
//     and (after MFA) MFA time;
//   - otherwise a user named after the email that has no identity yet (for
//     example created by an admin beforehand) is bound to it, unless it is
//     a local account with a password;
//   - otherwise a member named after the email is created.
//
// A disabled user is refused with login.ErrAccountDisabled.
func (r *Registry) signInOIDC(ctx context.Context, tx *audit.Tx, id login.Identity, ev *audit.Event) (store.User, bool, error) {
	now := r.now()
	u, err := tx.GetUserByIdentity(ctx, id.Issuer, id.Subject)
	switch {
	case err == nil:
		if u.Disabled {
			return store.User{}, false, disabledUser(u)
		}
		before := u
		applyIdentity(&u, id, now)
		ev.Detail["user"] = userUpdated
		changed := !slices.Equal(before.Groups, u.Groups) || !before.MFAAt.Equal(u.MFAAt)
		return u, changed, tx.UpdateUser(ctx, u)
	case !errors.Is(err, store.ErrNotFound):
		return store.User{}, false, err
	}

	u, err = tx.GetUserByName(ctx, id.Email)
	switch {
	case err == nil:
		if u.Issuer != "" || u.Subject != "" {
			return store.User{}, false, fmt.Errorf("%w: the account %s belongs to another identity (a different user ID at the identity provider); ask an admin to remove or rename it",
				login.ErrRefused, u.Name)
		}
		if u.PasswordHash != "" {
			return store.User{}, false, fmt.Errorf("%w: %s is a local account with a password and cannot be taken over by an identity-provider login; ask an admin",
				login.ErrRefused, u.Name)
		}
		if u.Disabled {
			return store.User{}, false, disabledUser(u)
		}
		u.Issuer, u.Subject = id.Issuer, id.Subject
		applyIdentity(&u, id, now)
		ev.Detail["user"] = userBound
		return u, true, tx.UpdateUser(ctx, u)
	case !errors.Is(err, store.ErrNotFound):
		return store.User{}, false, err
	}

	u = store.User{Name: id.Email, Role: store.RoleMember, Created: now, Issuer: id.Issuer, Subject: id.Subject}
	applyIdentity(&u, id, now)
	u, err = tx.CreateUser(ctx, u)
	ev.Detail["user"] = userCreated
	return u, false, err
}

// applyIdentity copies what a sign-in says about the user onto u.
func applyIdentity(u *store.User, id login.Identity, now time.Time) {
	u.Email = id.Email
	u.DisplayName = id.Name
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

// disabledUser returns the refusal for a disabled account.
func disabledUser(u store.User) error {
	return fmt.Errorf("%w (%s): ask an admin to enable it", login.ErrAccountDisabled, u.Name)
}

// ApplyRecheck records what the OpenID Provider said about user u when
// asked again (login.Users). A user it no longer accepts is disabled, its
// keys revoked and its refresh token forgotten, audited as
// login.oidc-recheck and user.disable by idp:<issuer>; changed email or
// groups are stored (audited when they changed) and the user's nodes
// republished. A rotated refresh token and the check time are kept
// quietly: bookkeeping, not a change anyone decided. A refusal that does
// not disable the user yet (rc.Refused) and a provider that has not
// answered for too long (rc.Unanswered) are audited as
// login.oidc-recheck, denied or error, and change nothing: the check time
// stays that of the provider's last decisive answer.
func (r *Registry) ApplyRecheck(ctx context.Context, u store.User, rc login.Recheck) (bool, error) {
	idp := Actor{Name: "idp:" + u.Issuer, Admin: true, Remote: "oidc-recheck"}
	target := fmt.Sprintf("user:%d", u.ID)
	if !rc.Revoked && (rc.Refused || rc.Unanswered) {
		ev := audit.Event{Actor: idp.Name, Action: "login.oidc-recheck", Target: target, Outcome: audit.Denied,
			Detail: map[string]any{"reason": rc.Reason}}
		if rc.Unanswered {
			ev.Outcome = audit.Failed
		}
		return false, r.audit.Commit(ctx, func(tx *audit.Tx) error {
			tx.Record(ev)
			return nil
		})
	}
	changed := false
	err := r.audit.Commit(ctx, func(tx *audit.Tx) error {
		cur, err := tx.GetUser(ctx, u.ID)
		if err != nil {
			return err
		}
		if cur.Issuer != u.Issuer || cur.Subject != u.Subject {
			return errors.New("the user's identity changed during the check")
		}
		// The user signed in again during the check: the provider's
		// answer is about a refresh token the store no longer holds (and
		// may have invalidated because it issued the new one), so it says
		// nothing about the user now. The next round asks with the new
		// token.
		replaced := cur.RefreshToken != u.RefreshToken
		if replaced && rc.Revoked {
			r.log.Info("oidc recheck: the user signed in again during the check; asking again with the new sign-in", "user", u.Name)
			return nil
		}
		cur.IdPCheckedAt = r.now()
		if rc.Revoked {
			cur.RefreshToken = ""
			tx.Record(audit.Event{Actor: idp.Name, Action: "login.oidc-recheck", Target: target, Outcome: audit.Denied,
				Detail: map[string]any{"reason": rc.Reason}})
			if !cur.Disabled {
				cur.Disabled, changed = true, true
				tx.Record(idp.event("user.disable", target, map[string]any{"reason": rc.Reason}))
				if err := r.revokeKeysOf(ctx, tx, idp, u.ID, "identity provider revoked the user"); err != nil {
					return err
				}
			}
			return tx.UpdateUser(ctx, cur)
		}
		id := rc.Identity
		if cur.Email != id.Email || !slices.Equal(cur.Groups, id.Groups) {
			changed = true
			tx.Record(audit.Event{Actor: idp.Name, Action: "login.oidc-recheck", Target: target, Outcome: audit.OK,
				Detail: map[string]any{"email": id.Email, "groups": id.Groups, "groups_before": cur.Groups}})
		}
		cur.Email = id.Email
		cur.Groups = slices.Clone(id.Groups)
		if cur.Groups == nil {
			cur.Groups = []string{}
		}
		if id.RefreshToken != "" && !replaced {
			cur.RefreshToken = id.RefreshToken // the provider rotated it
		}
		return tx.UpdateUser(ctx, cur)
	})
	if err != nil {
		return false, err
	}
	if changed {
		if rc.Revoked {
			r.log.Warn("user disabled: the identity provider no longer accepts them", "user", u.Name, "reason", rc.Reason)
		}
		return true, r.republishUser(ctx, u.ID)
	}
	return false, nil
}
