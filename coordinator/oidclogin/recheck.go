package oidclogin

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/store"
)

// Rechecks: with Config.RefreshChecks the coordinator keeps each user's
// refresh token from their last sign-in and, now and then, asks the
// provider for fresh tokens with it. A provider that refuses (the user was
// disabled, deleted or signed out everywhere at the IdP, or an admin
// revoked the grant) is telling us the user is gone: the user is
// reported to Config.OnIdentityRevoked, which disables them, and their
// devices leave the mesh without waiting for their keys to expire. A
// fresh answer updates the user's email and groups, so group changes at
// the IdP reach the policy too. A provider that cannot be reached changes
// nothing: an IdP outage must not cut everybody off.

// recheckAction is the audit action of rechecks that changed something.
const recheckAction = "login.oidc-recheck"

// RecheckSummary counts what RecheckAll did.
type RecheckSummary struct {
	Checked int // users asked about
	Revoked int // users the provider no longer accepts
	Updated int // users whose email or groups changed
	Failed  int // users whose check failed (provider unreachable, store error)
}

// RecheckAll asks the provider about every enabled user of this issuer who
// has a refresh token, one after the other, until done or ctx ends.
func (l *Login) RecheckAll(ctx context.Context) (RecheckSummary, error) {
	var sum RecheckSummary
	users, err := l.cfg.Store.ListUsers(ctx)
	if err != nil {
		return sum, fmt.Errorf("oidc recheck: %w", err)
	}
	for _, u := range users {
		if u.Disabled || u.RefreshToken == "" || u.Issuer != l.cfg.Issuer || u.Subject == "" {
			continue
		}
		if ctx.Err() != nil {
			return sum, ctx.Err()
		}
		sum.Checked++
		switch outcome, err := l.Recheck(ctx, u); {
		case err != nil:
			sum.Failed++
			l.log.Warn("oidc recheck failed; the user keeps access until the next check", "user", u.Name, "err", err)
		case outcome == RecheckRevoked:
			sum.Revoked++
		case outcome == RecheckUpdated:
			sum.Updated++
		}
	}
	return sum, nil
}

// RecheckOutcome is what one recheck found.
type RecheckOutcome int

// Outcomes of Recheck.
const (
	RecheckUnchanged RecheckOutcome = iota // still accepted, nothing changed
	RecheckUpdated                         // still accepted; email or groups changed
	RecheckRevoked                         // the provider no longer accepts the user
)

// Recheck asks the provider about user u with its stored refresh token
// and applies the answer (see the package's recheck notes). An error
// means the check could not be made; nothing was changed then.
func (l *Login) Recheck(ctx context.Context, u store.User) (RecheckOutcome, error) {
	id, err := l.refresh(ctx, u)
	var r *refusal
	if errors.As(err, &r) {
		return RecheckRevoked, l.revoke(ctx, u, r.reason)
	}
	if err != nil {
		return RecheckUnchanged, err
	}
	var updated store.User
	changed := false
	err = l.cfg.Store.Tx(ctx, func(q store.Queries) error {
		cur, err := q.GetUser(ctx, u.ID)
		if err != nil {
			return err
		}
		if cur.Issuer != u.Issuer || cur.Subject != u.Subject {
			return errors.New("the user's identity changed during the check")
		}
		changed = cur.Email != id.Email || !slices.Equal(cur.Groups, id.Groups)
		cur.Email = id.Email
		cur.Groups = slices.Clone(id.Groups)
		if cur.Groups == nil {
			cur.Groups = []string{}
		}
		if id.RefreshToken != "" {
			cur.RefreshToken = id.RefreshToken // the provider rotated it
		}
		cur.IdPCheckedAt = l.cfg.Now()
		updated = cur
		return q.UpdateUser(ctx, cur)
	})
	if err != nil {
		return RecheckUnchanged, fmt.Errorf("store the recheck of %s: %w", u.Name, err)
	}
	if !changed {
		return RecheckUnchanged, nil
	}
	l.recordRecheck(ctx, u, audit.OK, map[string]any{"email": updated.Email, "groups": updated.Groups,
		"groups_before": u.Groups})
	if l.cfg.OnUserChanged != nil {
		l.cfg.OnUserChanged(context.WithoutCancel(ctx), u.ID)
	}
	return RecheckUpdated, nil
}

// refresh redeems u's refresh token and returns what the fresh tokens
// say. A refusal (*refusal) means the provider or the claim rules no
// longer accept the user; any other error means no answer.
func (l *Login) refresh(ctx context.Context, u store.User) (identity, error) {
	ctx = oidc.ClientContext(ctx, l.cfg.HTTPClient)
	tok, err := l.oauth.TokenSource(ctx, &oauth2.Token{RefreshToken: u.RefreshToken}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
			return identity{}, refusef("the identity provider no longer accepts the user's sign-in (invalid_grant)")
		}
		// Never put err itself anywhere: it may quote the response.
		return identity{}, fmt.Errorf("refresh at the identity provider: %v", exchangeErrorDetail(err))
	}
	var claims map[string]any
	if raw, _ := tok.Extra("id_token").(string); raw != "" {
		idTok, err := l.verifier.Verify(ctx, raw)
		if err != nil {
			return identity{}, fmt.Errorf("the refreshed ID token did not verify: %w", err)
		}
		if idTok.Subject != u.Subject {
			return identity{}, errors.New("the refreshed ID token is for another subject")
		}
		if claims, err = l.claims(ctx, idTok, tok); err != nil {
			return identity{}, err
		}
	} else {
		if l.provider.UserInfoEndpoint() == "" {
			return identity{}, errors.New("the provider sent no ID token on refresh and has no userinfo endpoint")
		}
		subject, info, err := l.userinfo(ctx, tok)
		if err != nil {
			return identity{}, err
		}
		if subject != u.Subject {
			return identity{}, errors.New("the userinfo endpoint answered for another subject")
		}
		claims = info
	}
	id, err := l.checkClaims(u.Subject, claims)
	if err != nil {
		return identity{}, err
	}
	id.RefreshToken = tok.RefreshToken
	return id, nil
}

// revoke forgets u's refresh token, audits why and reports u to
// OnIdentityRevoked.
func (l *Login) revoke(ctx context.Context, u store.User, reason string) error {
	err := l.cfg.Store.Tx(ctx, func(q store.Queries) error {
		cur, err := q.GetUser(ctx, u.ID)
		if err != nil {
			return err
		}
		cur.RefreshToken = ""
		cur.IdPCheckedAt = l.cfg.Now()
		return q.UpdateUser(ctx, cur)
	})
	l.recordRecheck(ctx, u, audit.Denied, map[string]any{"reason": reason})
	if l.cfg.OnIdentityRevoked != nil {
		l.cfg.OnIdentityRevoked(context.WithoutCancel(ctx), u.ID, reason)
	}
	if err != nil {
		return fmt.Errorf("forget the refresh token of %s: %w", u.Name, err)
	}
	return nil
}

// recordRecheck audits a recheck that changed something.
func (l *Login) recordRecheck(ctx context.Context, u store.User, outcome string, detail map[string]any) {
	if l.cfg.Audit == nil {
		return
	}
	_ = l.cfg.Audit.Record(context.WithoutCancel(ctx), audit.Event{Actor: "idp:" + l.cfg.Issuer,
		Action: recheckAction, Target: fmt.Sprintf("user:%d", u.ID), Outcome: outcome, Detail: detail})
}
