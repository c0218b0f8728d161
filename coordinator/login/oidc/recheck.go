package oidc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/warrenmesh/warren/coordinator/login"
	"github.com/warrenmesh/warren/coordinator/store"
)

// Rechecks: with Config.RefreshChecks the coordinator keeps each user's
// refresh token from their last sign-in (always the newest: every sign-in
// and every refresh that returns one replaces it, since providers such as
// Dex rotate them and refuse the old one) and, now and then, asks the
// provider for fresh tokens with it. A fresh answer updates the user's
// email and groups, so group changes at the IdP reach the policy too.
//
// What the provider answers decides what happens:
//   - invalid_grant (RFC 6749 §5.2: the grant is invalid, expired or
//     revoked, e.g. the user was signed out everywhere, disabled or their
//     consent revoked) disables the user at once, and a fresh answer whose
//     claims the rules no longer accept (email domain, required claims)
//     does too;
//   - any other OAuth error response about the request (invalid_request,
//     as Dex answers with HTTP 500 for a deleted user, or a provider's own
//     codes) is a refusal too, but it disables the user only after
//     Config.RecheckDisableAfter rechecks in a row were refused, so one
//     odd answer does not cut anyone off;
//   - no answer is not a refusal: transport errors, timeouts, an HTTP
//     error without an OAuth error body (a proxy's 502), and the codes by
//     which a provider says it cannot answer now (server_error,
//     temporarily_unavailable) change nothing, and neither do the codes
//     that refuse the coordinator's own client rather than the user
//     (invalid_client, unauthorized_client, unsupported_grant_type,
//     invalid_scope): an IdP outage or a broken client registration must
//     not cut everybody off. A user whose checks have had no answer for
//     longer than Config.RecheckAlertAfter (counted from the provider's
//     last decisive answer, IdPCheckedAt, so it survives restarts) is
//     reported at every recheck with a warning, and audited once
//     (login.oidc-recheck, outcome error) each time they cross the bound.
//
// The count of refusals in a row lives in memory only: a restart forgets
// it, which delays the disabling of a user the provider refuses by at most
// RecheckDisableAfter-1 more rounds. After three checks in a row without
// an answer, a round stops asking (the provider is down) and counts the
// remaining users as failed, so a stalled provider costs a round three
// client timeouts, not one per user.

// Defaults of Config.RecheckDisableAfter and Config.RecheckAlertAfter.
const (
	DefaultRecheckDisableAfter = 2
	DefaultRecheckAlertAfter   = time.Hour
)

// maxUnansweredInARow ends a round early when the provider is down.
const maxUnansweredInARow = 3

// RecheckSummary counts what RecheckAll did.
type RecheckSummary struct {
	Checked int // users asked about (or skipped once the provider stopped answering)
	Revoked int // users the provider no longer accepts, now disabled
	Refused int // users the provider refused, not yet often enough to disable them
	Updated int // users whose email or groups changed
	Failed  int // users whose check had no answer (provider unreachable or too slow, client refused, store error)
	Overdue int // of Failed: users without an answer for longer than Config.RecheckAlertAfter
}

// recheckState is what rechecks remember between rounds, in memory.
type recheckState struct {
	round    sync.Mutex // one round at a time
	mu       sync.Mutex
	refusals map[store.UserID]int  // refusals in a row, not yet deciding
	alerted  map[store.UserID]bool // overdue users already audited
}

// refused counts one more refusal of id and returns how many in a row.
func (s *recheckState) refused(id store.UserID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refusals == nil {
		s.refusals = map[store.UserID]int{}
	}
	s.refusals[id]++
	delete(s.alerted, id)
	return s.refusals[id]
}

// answered forgets id's refusals and alert: the provider decided.
func (s *recheckState) answered(id store.UserID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.refusals, id)
	delete(s.alerted, id)
}

// keepOnly forgets every user not in ids (gone, disabled or signed out
// since), after a round.
func (s *recheckState) keepOnly(ids map[store.UserID]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.refusals {
		if !ids[id] {
			delete(s.refusals, id)
		}
	}
	for id := range s.alerted {
		if !ids[id] {
			delete(s.alerted, id)
		}
	}
}

// alert marks id as audited overdue and reports whether it was not yet.
func (s *recheckState) alert(id store.UserID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.alerted == nil {
		s.alerted = map[store.UserID]bool{}
	}
	first := !s.alerted[id]
	s.alerted[id] = true
	return first
}

// RecheckAll asks the provider about every enabled user of this issuer who
// has a refresh token, one after the other, until done or ctx ends. Rounds
// run one at a time.
func (l *Login) RecheckAll(ctx context.Context) (RecheckSummary, error) {
	l.rechecks.round.Lock()
	defer l.rechecks.round.Unlock()
	var sum RecheckSummary
	if !l.discovered() {
		// Nothing is known about anyone until the provider answers.
		return sum, fmt.Errorf("oidc recheck skipped: %w", login.ErrProviderUnavailable)
	}
	users, err := l.cfg.Store.ListUsers(ctx)
	if err != nil {
		return sum, fmt.Errorf("oidc recheck: %w", err)
	}
	var down error // set once the provider stopped answering this round
	unanswered := 0
	asked := map[store.UserID]bool{}
	defer l.rechecks.keepOnly(asked)
	for _, u := range users {
		if u.Disabled || u.RefreshToken == "" || u.Issuer != l.cfg.Issuer || u.Subject == "" {
			continue
		}
		asked[u.ID] = true
		if ctx.Err() != nil {
			return sum, ctx.Err()
		}
		sum.Checked++
		outcome, err := RecheckUnchanged, down
		if down == nil {
			outcome, err = l.Recheck(ctx, u)
		}
		var na *noAnswer
		if errors.As(err, &na) {
			if unanswered++; unanswered >= maxUnansweredInARow && down == nil {
				down = fmt.Errorf("not asked: the identity provider did not answer %d checks in a row (last: %w)", unanswered, err)
			}
		} else {
			unanswered = 0
		}
		switch {
		case err != nil:
			sum.Failed++
			if l.unanswered(ctx, u, err) {
				sum.Overdue++
			}
		case outcome == RecheckRevoked:
			sum.Revoked++
		case outcome == RecheckRefused:
			sum.Refused++
		case outcome == RecheckUpdated:
			sum.Updated++
		}
	}
	return sum, nil
}

// unanswered reports a check of u that failed with err, and whether u has
// been without an answer for longer than Config.RecheckAlertAfter; the
// first time it is, the registry audits it.
func (l *Login) unanswered(ctx context.Context, u store.User, err error) bool {
	bound := l.cfg.RecheckAlertAfter
	if bound <= 0 {
		bound = DefaultRecheckAlertAfter
	}
	since := u.IdPCheckedAt
	late := l.cfg.Now().Sub(since)
	if since.IsZero() || late <= bound {
		l.log.Warn("oidc recheck failed; the user keeps access until the next check", "user", u.Name, "err", err)
		return false
	}
	late = late.Round(time.Second)
	l.log.Warn("oidc recheck: no answer from the identity provider about this user for longer than the alert bound; "+
		"they keep access, and offboarding them at the provider does not reach the mesh until it answers: check that the coordinator reaches the provider's token endpoint and that the client is registered there",
		"user", u.Name, "last_answer", since, "for", late, "bound", bound, "err", err)
	if !l.rechecks.alert(u.ID) {
		return true
	}
	rc := login.Recheck{Unanswered: true, Reason: fmt.Sprintf("no answer from the identity provider for %v: %v", late, err)}
	if _, aerr := l.cfg.Users.ApplyRecheck(ctx, u, rc); aerr != nil {
		l.log.Warn("oidc recheck: audit the overdue user", "user", u.Name, "err", aerr)
	}
	return true
}

// RecheckOutcome is what one recheck found.
type RecheckOutcome int

// Outcomes of Recheck.
const (
	RecheckUnchanged RecheckOutcome = iota // still accepted, nothing changed
	RecheckUpdated                         // still accepted; email or groups changed
	RecheckRevoked                         // the provider no longer accepts the user; disabled
	RecheckRefused                         // the provider refused, not yet often enough to disable the user
)

// Recheck asks the provider about user u with its stored refresh token
// and hands the answer to Config.Users, which disables a user the
// provider no longer accepts and stores changed claims and the rotated
// refresh token. An error means there was no answer; nothing was changed
// then.
func (l *Login) Recheck(ctx context.Context, u store.User) (RecheckOutcome, error) {
	id, err := l.refresh(ctx, u)
	var r *refusal
	var a *providerRefusal
	var rc login.Recheck
	switch {
	case errors.As(err, &r):
		l.rechecks.answered(u.ID)
		rc = login.Recheck{Revoked: true, Reason: r.reason}
	case errors.As(err, &a):
		after := l.cfg.RecheckDisableAfter
		if after <= 0 {
			after = DefaultRecheckDisableAfter
		}
		n := l.rechecks.refused(u.ID)
		if n < after {
			l.log.Warn("oidc recheck: the identity provider refused the user; they are disabled if it refuses again",
				"user", u.Name, "refusals", n, "disable_after", after, "error", a.code, "description", a.desc, "status", a.status)
			rc = login.Recheck{Refused: true, Reason: fmt.Sprintf("%s (refusal %d of %d before the user is disabled)", a.reason(), n, after)}
			if _, err := l.cfg.Users.ApplyRecheck(ctx, u, rc); err != nil {
				return RecheckUnchanged, fmt.Errorf("record the recheck of %s: %w", u.Name, err)
			}
			return RecheckRefused, nil
		}
		l.rechecks.answered(u.ID)
		rc = login.Recheck{Revoked: true, Reason: fmt.Sprintf("%s, %d rechecks in a row", a.reason(), n)}
	case err != nil:
		return RecheckUnchanged, err
	default:
		l.rechecks.answered(u.ID)
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

// providerRefusal is an OAuth error response refusing a user's refresh
// token with a code other than invalid_grant: a definite answer, counted
// towards Config.RecheckDisableAfter.
type providerRefusal struct {
	code, desc string
	status     int
}

func (a *providerRefusal) Error() string { return a.reason() }

// reason says what the provider answered; safe to log and audit (the
// description is the provider's, clipped).
func (a *providerRefusal) reason() string {
	s := fmt.Sprintf("the identity provider refused the user's refresh token: %s (HTTP %d)", a.code, a.status)
	if a.desc != "" {
		s += ": " + a.desc
	}
	return s
}

// noAnswer is a recheck without an answer about the user: the provider
// could not be reached, was too slow, said it cannot answer now, or
// refused the coordinator's client.
type noAnswer struct{ msg string }

func (e *noAnswer) Error() string { return e.msg }

// classifyRefreshError sorts a failed refresh into a refusal that
// disables at once (*refusal), a refusal that counts (*providerRefusal)
// and no answer (*noAnswer). The error's text never quotes the response
// body beyond the OAuth error fields.
func classifyRefreshError(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		// Transport errors and timeouts: url.Error names the token
		// endpoint and the network error, never the request body.
		return &noAnswer{msg: fmt.Sprintf("the identity provider's token endpoint could not be reached: %v", err)}
	}
	status := 0
	if re.Response != nil {
		status = re.Response.StatusCode
	}
	code, desc := printable(re.ErrorCode, 64), printable(re.ErrorDescription, 200)
	switch code {
	case "invalid_grant":
		return refusef("the identity provider no longer accepts the user's sign-in (invalid_grant)")
	case "":
		return &noAnswer{msg: fmt.Sprintf("the identity provider's token endpoint answered HTTP %d (%s) without an OAuth error: a proxy or the provider is failing",
			status, http.StatusText(status))}
	case "server_error", "temporarily_unavailable":
		return &noAnswer{msg: fmt.Sprintf("the identity provider cannot answer now: %s (HTTP %d) %s", code, status, desc)}
	case "invalid_client", "unauthorized_client", "unsupported_grant_type", "invalid_scope":
		return &noAnswer{msg: fmt.Sprintf("the identity provider refuses the coordinator's client, not the user: %s (HTTP %d) %s; check --oidc-client-id, the client secret and that the client may use refresh tokens",
			code, status, desc)}
	}
	return &providerRefusal{code: code, desc: desc, status: status}
}

// refresh redeems u's refresh token and returns what the fresh tokens
// say. A *refusal means the provider or the claim rules no longer accept
// the user, a *providerRefusal that the provider refused the token with
// another OAuth error; any other error means no answer.
func (l *Login) refresh(ctx context.Context, u store.User) (identity, error) {
	ctx = gooidc.ClientContext(ctx, l.cfg.HTTPClient)
	tok, err := l.oauth.TokenSource(ctx, &oauth2.Token{RefreshToken: u.RefreshToken}).Token()
	if err != nil {
		// Never put err itself anywhere: it may quote the response.
		return identity{}, classifyRefreshError(err)
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
