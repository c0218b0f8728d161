// Package oidclogin is the coordinator's interactive login: the OpenID
// Connect authorization code flow with PKCE (S256), implementing login.Login.
//
// A node that joins without a pre-auth key gets a short coordinator URL from
// Begin (StartPath + a random login ID). The user opens it; the coordinator
// sets a cookie that binds this browser to the login and redirects to the
// OpenID Provider with a fresh state, nonce and PKCE challenge. The provider
// sends the browser back to CallbackPath, where the code is exchanged, the ID
// token verified (signature, issuer, audience, expiry, nonce) and its claims
// checked against the configured rules (email domain, required claims). The
// identity (issuer + subject, email, groups, MFA) is then handed to
// login.Users (the registry), which maps it to a stored user and records
// the sign-in, and Wait returns that user.
//
// The package must never log or audit tokens, authorization codes, state,
// nonce, PKCE verifiers or the client secret, it must never accept an ID
// token it has not verified itself, and it never writes the store. It starts
// one goroutine of its own, only while the provider has not been discovered
// (New does not fail because the provider is down: it keeps trying in the
// background until Close), and refuses sign-ins meanwhile with
// login.ErrProviderUnavailable. Pending logins are swept when new ones
// begin, and every Wait ends with its context, its login's timeout, or the
// login's outcome.
package oidc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/login"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
)

// Paths served by Handler, relative to the coordinator's public URL.
const (
	// CallbackPath is where the OpenID Provider sends the browser back; the
	// provider's client registration must list RedirectURL, which ends with
	// it.
	CallbackPath = "/login/oidc/callback"
	// StartPath, followed by a login ID, is the URL Begin hands out.
	StartPath = "/login/oidc/start/"
)

// Defaults for Config fields left empty.
var (
	DefaultScopes     = []string{gooidc.ScopeOpenID, "email", "profile"}
	DefaultMFAMethods = []string{"mfa", "otp", "hwk", "swk", "sms", "fpt"}
)

const (
	// DefaultGroupsClaim is the claim read for the user's groups.
	DefaultGroupsClaim = "groups"
	// DefaultLoginTimeout bounds how long a login may take.
	DefaultLoginTimeout = 10 * time.Minute
	// exchangeTimeout bounds the calls to the provider during a callback.
	exchangeTimeout = 30 * time.Second
	// auditAction is the action of every audit event this package writes.
	auditAction = "login.oidc"
)

// Errors returned by Begin and Wait. Refusals wrap ErrRefused, so callers
// can tell a policy decision from a failure.
var (
	ErrUnknownLogin  = login.ErrUnknownLogin
	ErrLoginTimeout  = login.ErrLoginExpired
	ErrSuperseded    = login.ErrSuperseded
	ErrTooManyLogins = login.ErrTooManyLogins
	// ErrRefused is wrapped by every refusal: the identity provider said
	// no, the ID token did not verify, or the claims broke a rule.
	ErrRefused = login.ErrRefused
	// ErrAccountDisabled is returned (wrapping ErrRefused) when the user
	// signed in but their account on this coordinator is disabled.
	ErrAccountDisabled = login.ErrAccountDisabled
)

// Config configures a Login. Issuer, ClientID, RedirectURL and Store are
// required; every other field has a working zero value.
type Config struct {
	// Issuer is the OpenID Provider's issuer URL exactly as its discovery
	// document states it, e.g. https://login.microsoftonline.com/TENANT/v2.0.
	Issuer string
	// ClientID and ClientSecret are this coordinator's registration at the
	// provider. ClientSecret is empty for a public client (PKCE only).
	ClientID     string
	ClientSecret string
	// RedirectURL is the coordinator's public URL followed by CallbackPath.
	// If the public URL has a path prefix, mount Handler under that prefix
	// with http.StripPrefix.
	RedirectURL string
	// Scopes requested; default DefaultScopes. "openid" is always added.
	// Add "groups" if the provider needs it to send the groups claim.
	Scopes []string
	// AllowedDomains are the email domains that may sign in (exact match,
	// case-insensitive; subdomains are not included). Empty allows any
	// domain the provider vouches for, which New warns about.
	AllowedDomains []string
	// RequiredClaims maps a claim to the string value it must have (e.g.
	// "hd": "example.com"); a missing or different claim refuses the login.
	RequiredClaims map[string]string
	// GroupsClaim is the claim (a string or a list of strings) whose values
	// become the user's groups; policy refers to IdP group x as group:x.
	// Default DefaultGroupsClaim.
	GroupsClaim string
	// MFAMethods are amr values that mean a second factor was used; default
	// DefaultMFAMethods.
	MFAMethods []string
	// MFAACRs are acr values that mean MFA (provider-specific); none by
	// default.
	MFAACRs []string
	// LoginTimeout is how long a login may take from Begin; default
	// DefaultLoginTimeout. MaxPending and MaxPerSource bound the logins
	// in progress (see login.TableConfig).
	LoginTimeout time.Duration
	MaxPending   int
	MaxPerSource int
	// Store is read for users (RecheckAll lists them).
	Store store.Store
	// Users records sign-ins and recheck outcomes (the registry).
	Users login.Users
	// Audit receives a "login.oidc" event for every refused or failed
	// sign-in of a person the provider identified (successful ones are
	// recorded by Users); nil records none. What callers nobody has
	// identified get wrong (a forged state, a bad code, an unknown login
	// URL) goes to Failures instead: counted, sampled into the log, never
	// stored, since anyone can send it.
	Audit    *audit.Log
	Failures *audit.Failures
	// RefreshChecks keeps each user's refresh token (requesting the
	// offline_access scope when the provider offers it) so that
	// RecheckAll can ask the provider whether users may still sign in.
	RefreshChecks bool
	// RecheckDisableAfter is how many rechecks in a row the provider must
	// refuse a user with an OAuth error other than invalid_grant before the
	// user is disabled (default DefaultRecheckDisableAfter); invalid_grant
	// disables at once. See recheck.go.
	RecheckDisableAfter int
	// RecheckAlertAfter is how long a user's rechecks may go without an
	// answer from the provider before every recheck reports it (default
	// DefaultRecheckAlertAfter).
	RecheckAlertAfter time.Duration
	// HTTPClient is used for discovery, keys, the token and userinfo
	// endpoints; default a client with a 30 s timeout.
	HTTPClient *http.Client
	// Logger receives operational messages (never secrets); default none.
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// DiscoveryRetry is how long New's background discovery waits before
	// its first retry when the provider cannot be reached at start; it
	// doubles with each failure up to maxDiscoveryRetry. Default 2 s.
	DiscoveryRetry time.Duration
}

// maxDiscoveryRetry bounds the wait between discovery attempts.
const maxDiscoveryRetry = time.Minute

// googleIssuer is Google's issuer: it issues refresh tokens for
// access_type=offline (with prompt=consent), not for the offline_access
// scope.
const googleIssuer = "https://accounts.google.com"

// Login runs OIDC logins for nodes. It implements login.Login; create it
// with New and serve Handler on the coordinator's public listener. All
// methods are safe for concurrent use.
type Login struct {
	cfg          Config
	log          *slog.Logger
	startBase    string // absolute URL of StartPath (with any prefix)
	callbackPath string // path of RedirectURL, for the binding cookie
	rechecks     recheckState
	secure       bool // RedirectURL is https: cookies get Secure
	table        *login.Table[visitState]

	// Set once, by New or the discovery goroutine, before ready is
	// closed; read only after ready is closed.
	provider *gooidc.Provider
	verifier *gooidc.IDTokenVerifier
	oauth    oauth2.Config
	authOpts []oauth2.AuthCodeOption // extra parameters of every authorization request
	ready    chan struct{}

	stop      context.CancelFunc // ends the discovery goroutine
	stopped   chan struct{}      // closed when it has ended
	closeOnce sync.Once
}

// New checks cfg, fills in defaults and discovers the provider at
// cfg.Issuer (ctx bounds that first discovery only). A provider that
// cannot be reached does not stop New: the Login refuses sign-ins with
// login.ErrProviderUnavailable and keeps trying in the background until
// it answers or Close. A provider that answers with another issuer is a
// configuration error New returns.
func New(ctx context.Context, cfg Config) (*Login, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	redirect, err := url.Parse(cfg.RedirectURL)
	if err != nil || (redirect.Scheme != "https" && redirect.Scheme != "http") || redirect.Host == "" {
		return nil, fmt.Errorf("oidc login: RedirectURL %q is not an absolute http(s) URL: set it to the coordinator's public URL + %s", cfg.RedirectURL, CallbackPath)
	}
	if !strings.HasSuffix(redirect.Path, CallbackPath) || redirect.RawQuery != "" || redirect.Fragment != "" {
		return nil, fmt.Errorf("oidc login: RedirectURL %q must be the coordinator's public URL + %s, without query", cfg.RedirectURL, CallbackPath)
	}
	prefix := strings.TrimSuffix(redirect.Path, CallbackPath)
	base := &url.URL{Scheme: redirect.Scheme, Host: redirect.Host, Path: prefix + StartPath}

	log := cfg.Logger
	if redirect.Scheme == "http" && !isLoopback(redirect.Hostname()) {
		log.Warn("oidc login: RedirectURL is plain http; authorization codes and cookies can be intercepted, use https", "redirect_url", cfg.RedirectURL)
	}
	if len(cfg.AllowedDomains) == 0 {
		log.Warn("oidc login: AllowedDomains is empty, so anyone the identity provider authenticates can sign in and be created as a user", "issuer", cfg.Issuer)
	}

	l := &Login{
		cfg:          cfg,
		log:          log,
		startBase:    base.String(),
		callbackPath: redirect.Path,
		secure:       redirect.Scheme == "https",
		ready:        make(chan struct{}),
	}
	l.table = login.NewTable[visitState](login.TableConfig{Timeout: cfg.LoginTimeout, Max: cfg.MaxPending,
		MaxPerSource: cfg.MaxPerSource, Now: cfg.Now, OnExpire: l.expired})

	err = l.discover(ctx)
	var mismatch *gooidc.IssuerMismatchError
	switch {
	case err == nil:
		return l, nil
	case errors.As(err, &mismatch):
		return nil, err
	}
	log.Warn("oidc login: the identity provider cannot be reached; the coordinator runs without it, refuses sign-ins through it until it answers, and keeps trying",
		"issuer", cfg.Issuer, "err", err)
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	l.stop, l.stopped = stop, make(chan struct{})
	go l.rediscover(bg)
	return l, nil
}

// discover asks the provider for its configuration and, on success, sets
// up the Login's use of it and marks it ready. It is called by New, then
// only by the discovery goroutine, and not again once it succeeded.
func (l *Login) discover(ctx context.Context) error {
	cfg := l.cfg
	provider, err := gooidc.NewProvider(gooidc.ClientContext(ctx, cfg.HTTPClient), cfg.Issuer)
	if err != nil {
		var mismatch *gooidc.IssuerMismatchError
		if errors.As(err, &mismatch) {
			return fmt.Errorf("oidc login: the provider at %q says its issuer is %q: set Issuer to exactly that value (mind a trailing slash): %w",
				mismatch.Provided, mismatch.Discovered, err)
		}
		return fmt.Errorf("oidc login: discover OpenID Provider %q: %v (check Issuer and that the coordinator can reach %s/.well-known/openid-configuration)",
			cfg.Issuer, err, strings.TrimSuffix(cfg.Issuer, "/"))
	}
	var meta struct {
		PKCEMethods []string `json:"code_challenge_methods_supported"`
		Scopes      []string `json:"scopes_supported"`
	}
	if err := provider.Claims(&meta); err == nil && len(meta.PKCEMethods) > 0 && !slices.Contains(meta.PKCEMethods, "S256") {
		l.log.Warn("oidc login: the provider does not advertise PKCE S256; logins may fail", "issuer", cfg.Issuer, "methods", meta.PKCEMethods)
	}
	scopes, authOpts, noOffline := authRequest(cfg.Issuer, cfg.RefreshChecks, cfg.Scopes, meta.Scopes)
	if noOffline {
		l.log.Warn("oidc login: the provider does not offer the offline_access scope; rechecks work only if it issues refresh tokens anyway", "issuer", cfg.Issuer)
	}

	endpoint := provider.Endpoint()
	if cfg.ClientSecret == "" {
		// A public client authenticates with PKCE only: send client_id in
		// the form, not an empty Basic password.
		endpoint.AuthStyle = oauth2.AuthStyleInParams
	}
	l.provider = provider
	l.verifier = provider.Verifier(&gooidc.Config{ClientID: cfg.ClientID, Now: cfg.Now})
	l.oauth = oauth2.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret,
		Endpoint:     endpoint,
		RedirectURL:  cfg.RedirectURL,
		Scopes:       scopes,
	}
	l.authOpts = authOpts
	close(l.ready)
	return nil
}

// authRequest returns the scopes and extra parameters of the
// authorization request to issuer, given the configured scopes and those
// the provider offers. For rechecks it asks for a refresh token: with the
// offline_access scope (if offered or nothing is said), or at Google, which
// refuses that scope, with access_type=offline and prompt=consent (without
// a consent prompt Google issues a refresh token at the first sign-in
// only). noOffline reports that the provider offers no way.
func authRequest(issuer string, refresh bool, configured, offered []string) (scopes []string, opts []oauth2.AuthCodeOption, noOffline bool) {
	scopes = slices.Clone(configured)
	switch {
	case !refresh:
	case isGoogle(issuer):
		scopes = slices.DeleteFunc(scopes, func(s string) bool { return s == gooidc.ScopeOfflineAccess })
		opts = append(opts, oauth2.AccessTypeOffline, oauth2.SetAuthURLParam("prompt", "consent"))
	case slices.Contains(scopes, gooidc.ScopeOfflineAccess):
	case len(offered) == 0 || slices.Contains(offered, gooidc.ScopeOfflineAccess):
		scopes = append(scopes, gooidc.ScopeOfflineAccess)
	default:
		noOffline = true
	}
	return scopes, opts, noOffline
}

// rediscover retries discovery, backing off, until it succeeds or ctx
// ends. It is the discovery goroutine; Close ends it.
func (l *Login) rediscover(ctx context.Context) {
	defer close(l.stopped)
	delay := l.cfg.DiscoveryRetry
	for {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		err := l.discover(ctx)
		if err == nil {
			l.log.Info("oidc login: the identity provider answers; sign-ins through it work again", "issuer", l.cfg.Issuer)
			return
		}
		if ctx.Err() != nil {
			return
		}
		delay = min(2*delay, maxDiscoveryRetry)
		l.log.Warn("oidc login: the identity provider still cannot be reached; sign-ins through it are refused",
			"issuer", l.cfg.Issuer, "err", err, "retry_in", delay)
	}
}

// Ready is closed once the provider has been discovered: from then on
// sign-ins and rechecks reach it.
func (l *Login) Ready() <-chan struct{} { return l.ready }

// discovered reports whether Ready is closed.
func (l *Login) discovered() bool {
	select {
	case <-l.ready:
		return true
	default:
		return false
	}
}

// isGoogle reports whether issuer is Google's.
func isGoogle(issuer string) bool {
	return strings.TrimSuffix(issuer, "/") == googleIssuer || issuer == "accounts.google.com"
}

// fill checks the required fields and sets defaults.
func (c *Config) fill() error {
	var missing []string
	if c.Issuer == "" {
		missing = append(missing, "Issuer")
	}
	if c.ClientID == "" {
		missing = append(missing, "ClientID")
	}
	if c.RedirectURL == "" {
		missing = append(missing, "RedirectURL")
	}
	if c.Store == nil {
		missing = append(missing, "Store")
	}
	if c.Users == nil {
		missing = append(missing, "Users")
	}
	if len(missing) > 0 {
		return fmt.Errorf("oidc login: missing %s in the configuration", strings.Join(missing, ", "))
	}
	if len(c.Scopes) == 0 {
		c.Scopes = slices.Clone(DefaultScopes)
	}
	if !slices.Contains(c.Scopes, gooidc.ScopeOpenID) {
		c.Scopes = append([]string{gooidc.ScopeOpenID}, c.Scopes...)
	}
	domains := make([]string, 0, len(c.AllowedDomains))
	for _, d := range c.AllowedDomains {
		d = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(d), "@"))
		if d != "" {
			domains = append(domains, d)
		}
	}
	c.AllowedDomains = domains
	if c.GroupsClaim == "" {
		c.GroupsClaim = DefaultGroupsClaim
	}
	if len(c.MFAMethods) == 0 {
		c.MFAMethods = slices.Clone(DefaultMFAMethods)
	}
	if c.LoginTimeout <= 0 {
		c.LoginTimeout = DefaultLoginTimeout
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Failures == nil {
		c.Failures = audit.NewFailures(c.Logger, 0)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.DiscoveryRetry <= 0 {
		c.DiscoveryRetry = 2 * time.Second
	}
	return nil
}

// isLoopback reports whether host names the local machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Begin starts a login for machine and returns the coordinator URL the user
// must open. A login the machine began earlier and has not finished is
// replaced (its Wait returns ErrSuperseded).
func (l *Login) Begin(ctx context.Context, machine key.MachinePublic, source string) (string, error) {
	return l.BeginShared(ctx, machine, source, nil)
}

// BeginShared is Begin for a login that is one method of a choice
// (login.Joiner): it shares s's outcome, and ends with login.ErrLoginOver
// when another method settles it first. A nil s is a login of its own.
func (l *Login) BeginShared(ctx context.Context, machine key.MachinePublic, source string, s *login.Shared) (string, error) {
	if !l.discovered() {
		l.cfg.Failures.Record(auditAction, source, "identity provider unreachable")
		return "", login.ErrProviderUnavailable
	}
	e, err := l.table.Begin(machine, source, newVisitState())
	if err != nil {
		l.record(ctx, audit.Event{Actor: "node:" + machine.String(), Remote: source, Outcome: audit.Denied,
			Detail: map[string]any{"step": "begin", "reason": err.Error()}})
		return "", err
	}
	if s != nil {
		l.table.JoinShared(e, s)
	}
	return l.startBase + e.ID, nil
}

// Wait blocks until the login at loginURL, which Begin returned for the
// same machine, completes, fails or times out, or ctx ends. It returns the
// stored user on success, once.
func (l *Login) Wait(ctx context.Context, machine key.MachinePublic, loginURL string) (store.User, error) {
	id, _ := strings.CutPrefix(loginURL, l.startBase) // anything else is unknown
	u, err := l.table.Wait(ctx, machine, id)
	if errors.Is(err, ErrUnknownLogin) {
		l.record(ctx, audit.Event{Actor: "node:" + machine.String(), Outcome: audit.Denied,
			Detail: map[string]any{"step": "wait", "reason": "unknown or expired login URL"}})
	}
	return u, err
}

// Close ends every login in progress and the background discovery, if
// it runs, and waits for it.
func (l *Login) Close() {
	l.closeOnce.Do(func() {
		if l.stop != nil {
			l.stop()
			<-l.stopped
		}
	})
	l.table.Close()
}

// expired audits a login that timed out.
func (l *Login) expired(m key.MachinePublic) {
	l.record(context.Background(), audit.Event{Actor: "node:" + m.String(), Target: "node:" + m.String(), Outcome: audit.Failed,
		Detail: map[string]any{"reason": "login not completed in time"}})
}

// record writes an audit event for this package's action when its actor
// is a person the provider identified, and counts it in Failures
// otherwise.
func (l *Login) record(ctx context.Context, e audit.Event) {
	if !strings.HasPrefix(e.Actor, "user:") {
		reason, _ := e.Detail["reason"].(string)
		l.cfg.Failures.Record(auditAction, e.Remote, reason)
		return
	}
	if l.cfg.Audit == nil {
		return
	}
	e.Action = auditAction
	_ = l.cfg.Audit.Record(context.WithoutCancel(ctx), e)
}
