package oidc

import (
	"context"
	"crypto/subtle"
	"errors"
	"html/template"
	"net/http"
	"strings"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/login"
	"github.com/warrenmesh/warren/coordinator/store"
)

// Handler serves StartPath (sets the browser-binding cookie and redirects
// to the provider) and CallbackPath (completes the login). Mount it on the
// coordinator's public listener at those paths.
func (l *Login) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+StartPath+"{id}", l.serveStart)
	mux.HandleFunc("GET "+CallbackPath, l.serveCallback)
	return mux
}

// serveStart begins a browser's trip to the provider for one login.
func (l *Login) serveStart(w http.ResponseWriter, r *http.Request) {
	v, reason, ok := l.visit(r.PathValue("id"))
	if !ok {
		page(w, http.StatusBadRequest, "Login link not valid", reason)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     v.cookieName,
		Value:    v.binding,
		Path:     l.callbackPath,
		MaxAge:   max(int(v.expires.Sub(l.cfg.Now()).Seconds()), 1),
		Secure:   l.secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode, // sent on the provider's top-level redirect back
	})
	opts := append([]oauth2.AuthCodeOption{gooidc.Nonce(v.nonce), oauth2.S256ChallengeOption(v.verifier)}, l.authOpts...)
	target := l.oauth.AuthCodeURL(v.state, opts...)
	noStore(w)
	http.Redirect(w, r, target, http.StatusFound)
}

// serveCallback completes a login: state, browser binding, code exchange
// with the PKCE verifier, ID token verification, claim rules, user mapping.
// Every outcome is audited and shown to the browser; once the state matched
// a login, the outcome is also that login's result for Wait.
func (l *Login) serveCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	v, ok, finished := l.claim(q.Get("state"))
	if finished {
		page(w, http.StatusGone, "Sign-in already finished", msgFinished)
		return
	}
	if !ok {
		l.record(r.Context(), audit.Event{Actor: "unknown", Remote: r.RemoteAddr, Outcome: audit.Denied,
			Detail: map[string]any{"step": "callback", "reason": "unknown, expired or already used state"}})
		page(w, http.StatusBadRequest, "Login not valid",
			"This sign-in response is unknown, expired or was already used. Run 'warren up' on the device again to get a new login link.")
		return
	}
	c := &callback{l: l, w: w, r: r, v: v}
	c.run()
}

// callback is one callback request for a claimed login.
type callback struct {
	l      *Login
	w      http.ResponseWriter
	r      *http.Request
	v      visitInfo
	detail map[string]any
}

// run completes the login and answers the browser.
func (c *callback) run() {
	l, r, v := c.l, c.r, c.v
	c.detail = map[string]any{"step": "callback", "issuer": l.cfg.Issuer}
	// The binding cookie is spent either way.
	http.SetCookie(c.w, &http.Cookie{Name: v.cookieName, Value: "", Path: l.callbackPath, MaxAge: -1,
		Secure: l.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode})

	ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), oauth2.HTTPClient, l.cfg.HTTPClient), exchangeTimeout)
	defer cancel()
	id, ok := c.identify(ctx)
	if !ok {
		return
	}
	actor := "user:" + id.Email
	if !l.table.Settle(v.e) {
		// Another method of the same choice finished the login first.
		page(c.w, http.StatusGone, "Sign-in already finished", msgFinished)
		return
	}
	// The registry maps the identity to a user and records the sign-in
	// (or refuses it, and records that).
	c.detail["step"] = "callback"
	console := l.table.ForConsole(v.e)
	u, err := l.cfg.Users.SignIn(ctx, login.Identity{Method: login.MethodOIDC, Machine: v.e.Machine, Remote: r.RemoteAddr,
		Issuer: l.cfg.Issuer, Subject: id.Subject, Email: id.Email, Name: id.Name, Groups: id.Groups, RefreshToken: id.RefreshToken,
		MFA: id.MFA, Detail: c.detail, Console: console})
	if err != nil {
		c.endRecorded(actor, err)
		return
	}
	if !l.finish(v.e, u, nil) {
		// The login timed out or was replaced while the provider answered;
		// the user record is current, but no device joins with it.
		c.fail(actor, http.StatusBadRequest, "the login expired before it completed: run 'warren up' on the device again", nil)
		return
	}
	l.log.Info("oidc login", "user", u.Name, "machine", v.e.Machine.ShortString(), "mfa", id.MFA, "console", console)
	if console {
		// Back to the console's fixed path, which collects the outcome
		// and starts the session.
		noStore(c.w)
		http.Redirect(c.w, r, login.ConsoleFinishPath, http.StatusSeeOther)
		return
	}
	page(c.w, http.StatusOK, "Signed in", "Signed in as "+u.Name+". Your device is joining the network; you can close this window.")
}

// endRecorded ends the login with an error Users returned, which Users
// has audited already.
func (c *callback) endRecorded(actor string, err error) {
	c.l.finish(c.v.e, store.User{}, err)
	switch {
	case errors.Is(err, ErrAccountDisabled):
		page(c.w, http.StatusForbidden, "Sign-in refused", "Sign-in not completed: the account is disabled; ask an admin to enable it.")
	case errors.Is(err, ErrRefused):
		page(c.w, http.StatusForbidden, "Sign-in refused", "Sign-in not completed: "+strings.TrimPrefix(err.Error(), ErrRefused.Error()+": ")+".")
	default:
		c.l.log.Error("oidc login failed", "actor", actor, "err", err)
		page(c.w, http.StatusInternalServerError, "Sign-in failed", "Sign-in not completed: the coordinator could not complete the login; try again later.")
	}
}

// identify checks the browser binding and the provider's answer, exchanges
// the code, verifies the ID token and applies the claim rules. On failure
// it has ended the login and answered the browser, and returns false.
func (c *callback) identify(ctx context.Context) (identity, bool) {
	l, r, v := c.l, c.r, c.v
	cookie, err := r.Cookie(v.cookieName)
	if err != nil || subtle.ConstantTimeCompare([]byte(cookie.Value), []byte(v.binding)) != 1 {
		c.refuse("unknown", http.StatusBadRequest, "the sign-in came back to a different browser than the one that opened the login link")
		return identity{}, false
	}
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		c.detail["provider_error"] = clip(e, 64)
		c.refuse("unknown", http.StatusForbidden, "the identity provider did not sign you in: "+clip(e+" "+q.Get("error_description"), 200))
		return identity{}, false
	}
	code := q.Get("code")
	if code == "" {
		c.refuse("unknown", http.StatusBadRequest, "the identity provider sent no authorization code")
		return identity{}, false
	}

	tok, err := l.oauth.Exchange(ctx, code, oauth2.VerifierOption(v.verifier))
	if err != nil {
		// Never log err itself: it may quote the provider's whole response.
		pe := describeProviderError(err)
		l.log.Warn("oidc login: exchanging the authorization code at the identity provider failed: "+pe.String(), pe.LogAttrs()...)
		c.fail("unknown", http.StatusBadGateway, "exchanging the authorization code at the identity provider failed: "+pe.String(), pe.Detail())
		return identity{}, false
	}
	raw, _ := tok.Extra("id_token").(string)
	idTok, err := l.verifyIDToken(ctx, raw, v.nonce)
	if err != nil {
		c.failOrRefuse("unknown", err)
		return identity{}, false
	}
	if idTok.AccessTokenHash != "" {
		if err := idTok.VerifyAccessToken(tok.AccessToken); err != nil {
			c.refuse("unknown", http.StatusForbidden, "the access token does not match the ID token (at_hash)")
			return identity{}, false
		}
	}
	c.detail["subject"] = idTok.Subject
	claims, err := l.claims(ctx, idTok, tok)
	if err != nil {
		c.failOrRefuse("unknown", err)
		return identity{}, false
	}
	id, err := l.checkClaims(idTok.Subject, claims)
	actor := "unknown"
	if id.Email != "" {
		actor = "user:" + id.Email
		c.detail["email"] = id.Email
	}
	if err != nil {
		c.failOrRefuse(actor, err)
		return identity{}, false
	}
	if l.cfg.RefreshChecks {
		id.RefreshToken = tok.RefreshToken
	}
	c.detail["groups"] = id.Groups
	c.detail["mfa"] = id.MFA
	if len(id.AMR) > 0 {
		c.detail["amr"] = id.AMR
	}
	if id.ACR != "" {
		c.detail["acr"] = id.ACR
	}
	return id, true
}

// refuse ends the login with a refusal the user can read.
func (c *callback) refuse(actor string, status int, reason string) {
	c.end(actor, status, audit.Denied, reason, &refusal{reason: reason}, nil)
}

// fail ends the login because something broke (not a rule).
func (c *callback) fail(actor string, status int, reason string, extra map[string]any) {
	// The registry says "login failed" when it passes this on to the node.
	c.end(actor, status, audit.Failed, reason, errors.New(reason), extra)
}

// failOrRefuse ends the login with err, a refusal or a failure.
func (c *callback) failOrRefuse(actor string, err error) {
	var r *refusal
	switch {
	case errors.Is(err, ErrAccountDisabled):
		c.end(actor, http.StatusForbidden, audit.Denied, "the account is disabled", err, nil)
	case errors.As(err, &r):
		c.refuse(actor, http.StatusForbidden, r.reason)
	default:
		c.l.log.Error("oidc login failed", "err", err)
		c.fail(actor, http.StatusInternalServerError, "the coordinator could not complete the login; try again later", nil)
	}
}

// end finishes the login with waitErr, audits the outcome and shows the
// browser the reason.
func (c *callback) end(actor string, status int, outcome, reason string, waitErr error, extra map[string]any) {
	if !c.l.table.Settle(c.v.e) {
		// Another method of the same choice finished the login first.
		page(c.w, http.StatusGone, "Sign-in already finished", msgFinished)
		return
	}
	c.l.finish(c.v.e, store.User{}, waitErr)
	c.detail["reason"] = reason
	for k, v := range extra {
		c.detail[k] = v
	}
	c.l.record(c.r.Context(), audit.Event{Actor: actor, Target: "node:" + c.v.e.Machine.String(),
		Remote: c.r.RemoteAddr, Outcome: outcome, Detail: c.detail})
	title := "Sign-in refused"
	if outcome == audit.Failed {
		title = "Sign-in failed"
	}
	page(c.w, status, title, "Sign-in not completed: "+reason+".")
}

// clip shortens s to at most n bytes.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// noStore keeps responses out of caches and referrers: they carry
// one-time values.
func noStore(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Warren: {{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em;line-height:1.5}</style>
</head><body><h1>{{.Title}}</h1><p>{{.Message}}</p></body></html>
`))

// page writes a short HTML page for the browser.
func page(w http.ResponseWriter, status int, title, message string) {
	login.SetPageHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = pageTmpl.Execute(w, struct{ Title, Message string }{title, message})
}
