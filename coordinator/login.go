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
}

// buildLogin creates the configured login methods. republish is called
// when a login changed a user's groups or MFA time.
func (c *Coordinator) buildLogin(ctx context.Context, lc LoginConfig, st store.Store,
	republish func(context.Context, store.UserID)) (logins, error) {
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
			Store: st, Audit: c.audit, OnUserChanged: republish, HTTPClient: o.HTTPClient,
			Logger: c.log,
		})
		if err != nil {
			return logins{}, fmt.Errorf("OIDC login: %w", err)
		}
		label := o.Label
		if label == "" {
			label = "Sign in with single sign-on"
		}
		methods = append(methods, loginchoice.Method{Label: label, Login: l})
		h := l.Handler()
		mux.Handle(oidclogin.StartPath, h)
		mux.Handle(oidclogin.CallbackPath, h)
	}
	if lc.Local {
		l, err := locallogin.New(locallogin.Config{Store: st, Audit: c.audit, Logger: c.log,
			BaseURL: base, LoginTimeout: lc.Timeout, OnUserChanged: republish})
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
