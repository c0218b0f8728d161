package coordinator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/warrenmesh/warren/coordinator/auth"
	"github.com/warrenmesh/warren/coordinator/locallogin"
	"github.com/warrenmesh/warren/coordinator/loginchoice"
	"github.com/warrenmesh/warren/coordinator/oidclogin"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
)

// LoginConfig enables interactive login: a node that joins without a
// pre-auth key gets a URL for its user to sign in at. With both OIDC and
// local users enabled the URL leads to a page offering both.
type LoginConfig struct {
	// PublicURL is the coordinator's URL as the users' browsers reach it
	// (the OIDC redirect URL is PublicURL + oidclogin.CallbackPath).
	PublicURL string
	// OIDC, if set, signs users in at an OpenID Provider.
	OIDC *OIDCConfig
	// Local enables sign-in of local users (password, and TOTP for those
	// who enrolled it; admins must have it).
	Local bool
	// Timeout bounds a login; default 10 minutes.
	Timeout time.Duration
}

// OIDCConfig is the coordinator's registration at an OpenID Provider; see
// oidclogin.Config for what each field does.
type OIDCConfig struct {
	Issuer         string
	ClientID       string
	ClientSecret   string
	Scopes         []string
	AllowedDomains []string
	RequiredClaims map[string]string
	GroupsClaim    string
	MFAACRs        []string
	// RecheckEvery is how often the coordinator asks the provider, with
	// each user's refresh token, whether they may still sign in; a user
	// the provider no longer accepts is disabled. 0 turns rechecks off.
	RecheckEvery time.Duration
	// Label is the button on the choice page; default "Sign in with single
	// sign-on".
	Label string
	// HTTPClient reaches the provider; default a client with a 30 s
	// timeout.
	HTTPClient *http.Client
}

// enabled reports whether any login method is configured.
func (lc LoginConfig) enabled() bool { return lc.OIDC != nil || lc.Local }

// logins is what buildLogin made: the login the registry uses, the
// handler for its pages, and what to close at shutdown.
type logins struct {
	login   auth.Login
	handler http.Handler
	local   *locallogin.Login
	oidc    *oidclogin.Login // nil without OIDC
	recheck time.Duration    // OIDC recheck interval, 0 for none
}

// buildLogin creates the configured login methods. It runs before the
// registry exists; their callbacks reach it only once logins happen.
func (c *Coordinator) buildLogin(ctx context.Context, lc LoginConfig, st store.Store) (logins, error) {
	if !lc.enabled() {
		return logins{}, nil
	}
	base := strings.TrimSuffix(lc.PublicURL, "/")
	if base == "" {
		return logins{}, errors.New("login: the coordinator's public URL is required")
	}
	mux := http.NewServeMux()
	var methods []loginchoice.Method
	var out logins
	if o := lc.OIDC; o != nil {
		l, err := oidclogin.New(ctx, oidclogin.Config{
			Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
			RedirectURL: base + oidclogin.CallbackPath, Scopes: o.Scopes,
			AllowedDomains: o.AllowedDomains, RequiredClaims: o.RequiredClaims,
			GroupsClaim: o.GroupsClaim, MFAACRs: o.MFAACRs, LoginTimeout: lc.Timeout,
			Store: st, Audit: c.audit, OnUserChanged: c.republishUser, HTTPClient: o.HTTPClient,
			Logger: c.log, RefreshChecks: o.RecheckEvery > 0,
			OnIdentityRevoked: func(ctx context.Context, id store.UserID, reason string) {
				c.disableRevoked(ctx, o.Issuer, id, reason)
			},
		})
		if err != nil {
			return logins{}, fmt.Errorf("OIDC login: %w", err)
		}
		label := o.Label
		if label == "" {
			label = "Sign in with single sign-on"
		}
		methods = append(methods, loginchoice.Method{Label: label, Login: l})
		out.oidc, out.recheck = l, o.RecheckEvery
		h := l.Handler()
		mux.Handle(oidclogin.StartPath, h)
		mux.Handle(oidclogin.CallbackPath, h)
	}
	if lc.Local {
		l, err := locallogin.New(locallogin.Config{Store: st, Audit: c.audit, Logger: c.log,
			BaseURL: base, LoginTimeout: lc.Timeout, OnUserChanged: c.republishUser})
		if err != nil {
			return logins{}, err
		}
		out.local = l
		methods = append(methods, loginchoice.Method{Label: "Sign in with a local account", Login: l})
		mux.Handle(locallogin.LoginPath, l.Handler())
	}
	if len(methods) == 1 {
		out.login = methods[0].Login
	} else {
		ch, err := loginchoice.New(loginchoice.Config{BaseURL: base, Methods: methods, Timeout: lc.Timeout})
		if err != nil {
			return logins{}, err
		}
		out.login = ch
		mux.Handle(loginchoice.ChoosePath, ch.Handler())
	}
	out.handler = mux
	return out, nil
}

// runRechecks asks the OpenID Provider about every user at each interval
// until ctx ends.
func (c *Coordinator) runRechecks(ctx context.Context, l *oidclogin.Login, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		sum, err := l.RecheckAll(ctx)
		if err != nil && ctx.Err() == nil {
			c.log.Warn("oidc recheck round failed", "err", err)
		}
		c.log.Info("oidc recheck round", "checked", sum.Checked, "revoked", sum.Revoked,
			"updated", sum.Updated, "failed", sum.Failed, "took", time.Since(start).Round(time.Millisecond))
	}
}

// republishUser pushes a user's nodes again after a login changed the
// user's groups or MFA time.
func (c *Coordinator) republishUser(ctx context.Context, id store.UserID) {
	if err := c.registry.RepublishUser(ctx, id); err != nil {
		c.log.Warn("republish a user's nodes after their login", "user", id, "err", err)
	}
}

// disableRevoked disables a user the OpenID Provider no longer accepts.
func (c *Coordinator) disableRevoked(ctx context.Context, issuer string, id store.UserID, reason string) {
	actor := registry.Actor{Name: "idp:" + issuer, Admin: true, Remote: "oidc-recheck"}
	if _, err := c.registry.SetUserDisabled(ctx, actor, id, true); err != nil {
		c.log.Error("disable a user the identity provider revoked", "user", id, "reason", reason, "err", err)
		return
	}
	c.log.Warn("user disabled: the identity provider no longer accepts them", "user", id, "reason", reason)
}

// RecheckIdentities runs one recheck round now (see
// LoginConfig.OIDC.RecheckEvery): users the OpenID Provider no longer
// accepts are disabled. Without OIDC rechecks it does nothing.
func (c *Coordinator) RecheckIdentities(ctx context.Context) (oidclogin.RecheckSummary, error) {
	if c.logins.oidc == nil || c.logins.recheck <= 0 {
		return oidclogin.RecheckSummary{}, nil
	}
	return c.logins.oidc.RecheckAll(ctx)
}
