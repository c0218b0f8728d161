package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/login/oidc"
	"github.com/warrenmesh/warren/internal/cli"
)

// loginFlags are serve's flags for interactive login: OIDC at the
// company's identity provider and/or local users.
type loginFlags struct {
	issuer, clientID, secretFile, groupsClaim, label string
	scopes, domains                                  string
	required, acrs                                   cli.StringList
	local                                            bool
	timeout, recheck, recheckAlert                   time.Duration
	recheckFailClosed                                int
}

func (f *loginFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.issuer, "oidc-issuer", "", "OpenID Provider issuer URL: nodes joining without a key sign in there")
	fs.StringVar(&f.clientID, "oidc-client-id", "", "this coordinator's client ID at the provider")
	fs.StringVar(&f.secretFile, "oidc-client-secret-file", "", "file holding the client secret (none: public client, PKCE only)")
	fs.StringVar(&f.scopes, "oidc-scopes", "", "comma-separated scopes to request (default openid,email,profile; add groups if the provider needs it)")
	fs.StringVar(&f.domains, "oidc-allowed-domains", "", "comma-separated email domains that may sign in (default: any the provider vouches for)")
	fs.StringVar(&f.groupsClaim, "oidc-groups-claim", "", "claim holding the user's groups, which policy names group:NAME (default groups)")
	fs.Var(&f.required, "oidc-required-claim", "CLAIM=VALUE the ID token must carry, e.g. hd=example.com (repeatable)")
	fs.Var(&f.acrs, "oidc-mfa-acr", "acr value that means the login used MFA (repeatable; amr mfa/otp/hwk always count)")
	fs.StringVar(&f.label, "oidc-label", "", "button text on the sign-in choice page (default \"Sign in with single sign-on\")")
	fs.DurationVar(&f.recheck, "oidc-recheck", 15*time.Minute, "how often to ask the provider (with each user's refresh token) whether users may still sign in; users it refuses are disabled (0: never)")
	fs.IntVar(&f.recheckFailClosed, "oidc-recheck-fail-closed-after", oidc.DefaultRecheckDisableAfter,
		"disable a user after this many rechecks in a row that the provider refused with an OAuth error other than invalid_grant (invalid_grant disables at once; no answer never does)")
	fs.DurationVar(&f.recheckAlert, "oidc-recheck-alert-after", oidc.DefaultRecheckAlertAfter,
		"warn at every recheck about users the provider has not answered about (unreachable, too slow) for longer than this")
	fs.BoolVar(&f.local, "local-login", false, "let local users sign in with a password (and TOTP) set by warren-coordinator users passwd/totp")
	fs.DurationVar(&f.timeout, "login-timeout", 10*time.Minute, "how long a node's sign-in URL stays valid")
}

// config turns the flags into the coordinator's login configuration.
func (f *loginFlags) config(publicURL string) (coordinator.LoginConfig, error) {
	lc := coordinator.LoginConfig{PublicURL: publicURL, Local: f.local, Timeout: f.timeout}
	if f.issuer == "" {
		if f.clientID != "" || f.secretFile != "" || f.domains != "" || len(f.required) > 0 {
			return lc, errors.New("--oidc-* flags need --oidc-issuer")
		}
		return lc, nil
	}
	if f.clientID == "" {
		return lc, errors.New("--oidc-issuer needs --oidc-client-id")
	}
	if f.recheckFailClosed < 1 {
		return lc, fmt.Errorf("--oidc-recheck-fail-closed-after %d: want 1 or more", f.recheckFailClosed)
	}
	if f.recheckAlert <= 0 {
		return lc, fmt.Errorf("--oidc-recheck-alert-after %v: want a positive duration", f.recheckAlert)
	}
	o := &coordinator.OIDCConfig{Issuer: f.issuer, ClientID: f.clientID, GroupsClaim: f.groupsClaim,
		MFAACRs: f.acrs, Label: f.label, RecheckEvery: f.recheck, Scopes: splitList(f.scopes), AllowedDomains: splitList(f.domains),
		RecheckDisableAfter: f.recheckFailClosed, RecheckAlertAfter: f.recheckAlert}
	for i, d := range o.AllowedDomains {
		o.AllowedDomains[i] = strings.ToLower(strings.TrimPrefix(d, "@"))
	}
	if f.secretFile != "" {
		b, err := os.ReadFile(f.secretFile)
		if err != nil {
			return lc, fmt.Errorf("read --oidc-client-secret-file: %w", err)
		}
		o.ClientSecret = strings.TrimSpace(string(b))
		if o.ClientSecret == "" {
			return lc, fmt.Errorf("--oidc-client-secret-file %s is empty", f.secretFile)
		}
	}
	for _, kv := range f.required {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return lc, fmt.Errorf("--oidc-required-claim %q: want CLAIM=VALUE", kv)
		}
		if o.RequiredClaims == nil {
			o.RequiredClaims = map[string]string{}
		}
		o.RequiredClaims[k] = v
	}
	lc.OIDC = o
	return lc, nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
