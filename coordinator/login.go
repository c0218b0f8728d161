package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/warrenmesh/warren/coordinator/login"
	"github.com/warrenmesh/warren/coordinator/login/choice"
	"github.com/warrenmesh/warren/coordinator/login/local"
	"github.com/warrenmesh/warren/coordinator/login/oidc"
	"github.com/warrenmesh/warren/coordinator/store"
)

// LoginConfig enables interactive login: a node that joins without a
// pre-auth key gets a URL for its user to sign in at. With both OIDC and
// local users enabled the URL leads to a page offering both.
type LoginConfig struct {
	// PublicURL is the coordinator's URL as the users' browsers reach it
	// (the OIDC redirect URL is PublicURL + oidc.CallbackPath).
	PublicURL string
	// OIDC, if set, signs users in at an OpenID Provider.
	OIDC *OIDCConfig
	// Local enables sign-in of local users (password, and TOTP for those
	// who enrolled it; admins must have it).
	Local bool
	// Timeout bounds a login; default 10 minutes.
	Timeout time.Duration
	// MaxPending and MaxPerSource bound the sign-ins in progress, in
	// total and from one address (defaults login.DefaultMaxPending and
	// login.DefaultMaxPerSource).
	MaxPending   int
	MaxPerSource int
}

// OIDCConfig is the coordinator's registration at an OpenID Provider; see
// oidc.Config for what each field does.
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
	// RecheckDisableAfter is how many rechecks in a row the provider must
	// refuse with an OAuth error other than invalid_grant before the user
	// is disabled (invalid_grant disables at once); default
	// oidc.DefaultRecheckDisableAfter.
	RecheckDisableAfter int
	// RecheckAlertAfter is how long a user's rechecks may go without an
	// answer (provider unreachable or too slow) before each round warns
	// about them; default oidc.DefaultRecheckAlertAfter.
	RecheckAlertAfter time.Duration
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
	login   login.Login
	handler http.Handler
	local   *local.Login
	oidc    *oidc.Login     // nil without OIDC
	choice  *choice.Chooser // nil unless several methods
	recheck time.Duration   // OIDC recheck interval, 0 for none
}

// buildLogin creates the configured login methods. They record sign-ins
// through users (the registry, which is created after them). When it
// fails it closes the methods it made.
func (c *Coordinator) buildLogin(ctx context.Context, lc LoginConfig, st store.Store, users login.Users) (_ logins, err error) {
	if !lc.enabled() {
		return logins{}, nil
	}
	base := strings.TrimSuffix(lc.PublicURL, "/")
	if base == "" {
		return logins{}, errors.New("login: the coordinator's public URL is required")
	}
	mux := http.NewServeMux()
	var methods []choice.Method
	var out logins
	defer func() {
		if err != nil {
			out.close()
		}
	}()
	if o := lc.OIDC; o != nil {
		l, err := oidc.New(ctx, oidc.Config{
			Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
			RedirectURL: base + oidc.CallbackPath, Scopes: o.Scopes,
			AllowedDomains: o.AllowedDomains, RequiredClaims: o.RequiredClaims,
			GroupsClaim: o.GroupsClaim, MFAACRs: o.MFAACRs, LoginTimeout: lc.Timeout,
			MaxPending: lc.MaxPending, MaxPerSource: lc.MaxPerSource,
			Store: st, Users: users, Audit: c.audit, Failures: c.failures, HTTPClient: o.HTTPClient,
			Logger: c.log, RefreshChecks: o.RecheckEvery > 0,
			RecheckDisableAfter: o.RecheckDisableAfter, RecheckAlertAfter: o.RecheckAlertAfter,
		})
		if err != nil {
			return logins{}, fmt.Errorf("OIDC login: %w", err)
		}
		label := o.Label
		if label == "" {
			label = "Sign in with single sign-on"
		}
		methods = append(methods, choice.Method{Label: label, Login: l})
		out.oidc, out.recheck = l, o.RecheckEvery
		h := l.Handler()
		mux.Handle(oidc.StartPath, h)
		mux.Handle(oidc.CallbackPath, h)
	}
	if lc.Local {
		l, err := local.New(local.Config{Store: st, Users: users, Audit: c.audit, Failures: c.failures, Logger: c.log,
			BaseURL: base, LoginTimeout: lc.Timeout, MaxPending: lc.MaxPending, MaxPerSource: lc.MaxPerSource})
		if err != nil {
			return logins{}, err
		}
		out.local = l
		methods = append(methods, choice.Method{Label: "Sign in with a local account", Login: l})
		mux.Handle(local.LoginPath, l.Handler())
	}
	if len(methods) == 1 {
		out.login = methods[0].Login
	} else {
		ch, err := choice.New(choice.Config{BaseURL: base, Methods: methods, Timeout: lc.Timeout,
			MaxPending: lc.MaxPending, MaxPerSource: lc.MaxPerSource})
		if err != nil {
			return logins{}, err
		}
		out.login, out.choice = ch, ch
		mux.Handle(choice.ChoosePath, ch.Handler())
	}
	out.handler = mux
	return out, nil
}

// runRechecks asks the OpenID Provider about every user at each interval
// until ctx ends. A round with users past the alert bound, or refused
// but not yet disabled, is logged as a warning.
func (c *Coordinator) runRechecks(ctx context.Context, l *oidc.Login, every time.Duration) {
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
		level, msg := slog.LevelInfo, "oidc recheck round"
		if sum.Overdue > 0 || sum.Refused > 0 {
			level, msg = slog.LevelWarn, "oidc recheck round: users refused by the identity provider or without an answer from it for too long (see the warnings before)"
		}
		c.log.Log(ctx, level, msg, "checked", sum.Checked, "revoked", sum.Revoked, "refused", sum.Refused,
			"updated", sum.Updated, "failed", sum.Failed, "overdue", sum.Overdue, "took", time.Since(start).Round(time.Millisecond))
	}
}

// close ends every sign-in in progress.
func (ls logins) close() {
	if ls.choice != nil {
		ls.choice.Close()
	}
	if ls.local != nil {
		ls.local.Close()
	}
	if ls.oidc != nil {
		ls.oidc.Close()
	}
}

// registryUsers is the login methods' login.Users: the registry, which is
// created after them and is in place before the first sign-in.
type registryUsers struct{ c *Coordinator }

func (u registryUsers) SignIn(ctx context.Context, id login.Identity) (store.User, error) {
	return u.c.registry.SignIn(ctx, id)
}

func (u registryUsers) ApplyRecheck(ctx context.Context, user store.User, r login.Recheck) (bool, error) {
	return u.c.registry.ApplyRecheck(ctx, user, r)
}

// RecheckIdentities runs one recheck round now (see
// LoginConfig.OIDC.RecheckEvery): users the OpenID Provider no longer
// accepts are disabled. Without OIDC rechecks it does nothing.
func (c *Coordinator) RecheckIdentities(ctx context.Context) (oidc.RecheckSummary, error) {
	if c.logins.oidc == nil || c.logins.recheck <= 0 {
		return oidc.RecheckSummary{}, nil
	}
	return c.logins.oidc.RecheckAll(ctx)
}
