package oidc

import (
	"context"
	"errors"
	"fmt"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/warrenmesh/warren/coordinator/login"
	"github.com/warrenmesh/warren/coordinator/store"
)

// Rechecks: with Config.RefreshChecks the coordinator keeps each user's
// refresh token from their last sign-in and, now and then, asks the
// provider for fresh tokens with it. A provider that refuses (the user was
// disabled, deleted or signed out everywhere at the IdP, or an admin
// revoked the grant) is telling us the user is gone: the user is
// reported to Config.Users, which disables them, and their
// devices leave the mesh without waiting for their keys to expire. A
// fresh answer updates the user's email and groups, so group changes at
// the IdP reach the policy too. A provider that cannot be reached changes
// nothing: an IdP outage must not cut everybody off.

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
	if !l.discovered() {
		// Nothing is known about anyone until the provider answers.
		return sum, fmt.Errorf("oidc recheck skipped: %w", login.ErrProviderUnavailable)
	}
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
// and hands the answer to Config.Users, which disables a user the
// provider no longer accepts and stores changed claims. An error means
// the check could not be made; nothing was changed then.
func (l *Login) Recheck(ctx context.Context, u store.User) (RecheckOutcome, error) {
	id, err := l.refresh(ctx, u)
	var r *refusal
	var rc login.Recheck
	switch {
	case errors.As(err, &r):
		rc = login.Recheck{Revoked: true, Reason: r.reason}
	case err != nil:
		return RecheckUnchanged, err
	default:
		rc = login.Recheck{Identity: login.Identity{Method: login.MethodOIDC, Issuer: l.cfg.Issuer, Subject: id.Subject,
			Email: id.Email, Groups: id.Groups, RefreshToken: id.RefreshToken}}
	}
	changed, err := l.cfg.Users.ApplyRecheck(ctx, u, rc)
	switch {
	case err != nil:
		return RecheckUnchanged, fmt.Errorf("record the recheck of %s: %w", u.Name, err)
	case rc.Revoked:
		return RecheckRevoked, nil
	case changed:
		return RecheckUpdated, nil
	}
	return RecheckUnchanged, nil
}

// refresh redeems u's refresh token and returns what the fresh tokens
// say. A refusal (*refusal) means the provider or the claim rules no
// longer accept the user; any other error means no answer.
func (l *Login) refresh(ctx context.Context, u store.User) (identity, error) {
	ctx = gooidc.ClientContext(ctx, l.cfg.HTTPClient)
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
