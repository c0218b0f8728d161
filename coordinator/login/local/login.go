package local

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/login"
	"github.com/warrenmesh/warren/coordinator/login/credential"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
)

// LoginPath is where Handler serves sign-in forms: a login's URL is
// Config.BaseURL + LoginPath + its id. Mount Handler at this path.
const LoginPath = "/login/local/"

// maxConcurrentHashes bounds how many argon2 checks run at once (each
// takes the hash's memory cost, 64 MiB by default).
const maxConcurrentHashes = 2

// sweepEvery is how often attempts sweep the limiter's state.
const sweepEvery = 30 * time.Second

// Errors returned by Begin and Wait. Each says what to do next.
var (
	ErrUnknownLogin    = login.ErrUnknownLogin
	ErrLoginExpired    = login.ErrLoginExpired
	ErrSuperseded      = login.ErrSuperseded
	ErrTooManyLogins   = login.ErrTooManyLogins
	ErrClosed          = login.ErrClosed
	ErrTooManyAttempts = errors.New("local login failed after too many wrong attempts; run `warren up` again for a new URL")
)

// Config configures a Login.
type Config struct {
	// Store is read for users (name, password hash, TOTP secret).
	// Required.
	Store store.Store
	// Users records successful sign-ins (the registry). Required.
	Users login.Users
	// Audit receives an event for every refused attempt on a known user;
	// nil means events go to Logger only. Attempts on names that are no
	// user go to Failures: counted and sampled into the log, never
	// stored, since anyone can send them.
	Audit    *audit.Log
	Failures *audit.Failures
	// Logger for operational messages; nil discards them.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// BaseURL is the coordinator's public URL ("https://warren.example.com");
	// Begin returns BaseURL + LoginPath + <id>. Required.
	BaseURL string
	// LoginTimeout, MaxPending and MaxPerSource bound the logins in
	// progress (see login.TableConfig).
	LoginTimeout time.Duration
	MaxPending   int
	MaxPerSource int
	// PasswordParams are the argon2id parameters of the hash checked for
	// unknown users (so they cost as much as known ones); zero means
	// credential.Production, which is what stored hashes use.
	PasswordParams credential.Params
}

// Login runs interactive sign-ins of local users. It implements
// login.Login; its Handler serves the sign-in form. All methods are safe
// for concurrent use. It starts no goroutines; Close fails the logins in
// progress.
type Login struct {
	st           store.Store
	users        login.Users
	audit        *audit.Log
	failures     *audit.Failures
	log          *slog.Logger
	now          func() time.Time
	prefix       string // BaseURL + LoginPath
	secureCookie bool
	table        *login.Table[form]
	hashes       chan struct{} // semaphore for argon2 checks
	dummyHash    func() string // a hash to check against for unknown users
	limiter      *attemptLimiter

	mu        sync.Mutex
	lastSweep time.Time
}

// form is a login's state while its form is in use. Guarded by the table.
type form struct {
	cookie   string // SameSite cookie value binding form and submit
	failures int
	busy     bool // an attempt is being checked

}

var _ login.Login = (*Login)(nil)

// New returns a Login for cfg.
func New(cfg Config) (*Login, error) {
	if cfg.Store == nil || cfg.Users == nil {
		return nil, errors.New("local login: Store and Users are required")
	}
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" ||
		base.RawQuery != "" || base.Fragment != "" || base.User != nil {
		return nil, fmt.Errorf("local login: base URL %q must be an absolute http(s) URL like https://warren.example.com", cfg.BaseURL)
	}
	l := &Login{
		st:           cfg.Store,
		users:        cfg.Users,
		audit:        cfg.Audit,
		log:          cfg.Logger,
		now:          cfg.Now,
		prefix:       strings.TrimRight(cfg.BaseURL, "/") + LoginPath,
		secureCookie: base.Scheme == "https",
		hashes:       make(chan struct{}, maxConcurrentHashes),
		limiter:      newAttemptLimiter(),
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.audit == nil {
		l.audit = audit.New(nil, l.log)
	}
	l.failures = cfg.Failures
	if l.failures == nil {
		l.failures = audit.NewFailures(l.log, 0)
	}
	if l.now == nil {
		l.now = time.Now
	}
	l.table = login.NewTable[form](login.TableConfig{Timeout: cfg.LoginTimeout, Max: cfg.MaxPending,
		MaxPerSource: cfg.MaxPerSource, Now: l.now})
	params := cfg.PasswordParams
	if params.IsZero() {
		params = credential.Production
	}
	l.dummyHash = sync.OnceValue(func() string {
		h, _ := params.Hash("not a password: equalises the timing for unknown users")
		return h
	})
	return l, nil
}

// Begin starts a login for machine and returns the URL its user must open.
// The URL holds a random 128-bit id and works once. A newer Begin for the
// same machine replaces its older login.
func (l *Login) Begin(ctx context.Context, machine key.MachinePublic, source string) (string, error) {
	return l.BeginShared(ctx, machine, source, nil)
}

// BeginShared is Begin for a login that is one method of a choice
// (login.Joiner): it shares s's outcome, and ends with login.ErrLoginOver
// when another method settles it first. A nil s is a login of its own.
func (l *Login) BeginShared(ctx context.Context, machine key.MachinePublic, source string, s *login.Shared) (string, error) {
	e, err := l.table.Begin(machine, source, form{cookie: rand.Text()})
	if err != nil {
		return "", err
	}
	if s != nil {
		l.table.JoinShared(e, s)
	}
	return l.prefix + e.ID, nil
}

// Wait blocks until the login at loginURL, begun by Begin for the same
// machine, completes or fails, or ctx ends. It returns the signed-in user
// once; later calls with the same URL return ErrUnknownLogin. If ctx ends
// first the login stays open and Wait may be called again.
func (l *Login) Wait(ctx context.Context, machine key.MachinePublic, loginURL string) (store.User, error) {
	id, ok := strings.CutPrefix(loginURL, l.prefix)
	if !ok || id == "" {
		return store.User{}, ErrUnknownLogin
	}
	return l.table.Wait(ctx, machine, id)
}

// Close fails every login in progress with ErrClosed (waking their Waits)
// and makes Begin refuse new ones.
func (l *Login) Close() error {
	l.table.Close()
	return nil
}

// maybeSweep drops limiter state that has nothing left to remember, at
// most every sweepEvery.
func (l *Login) maybeSweep(now time.Time) {
	l.mu.Lock()
	due := now.Sub(l.lastSweep) >= sweepEvery
	if due {
		l.lastSweep = now
	}
	l.mu.Unlock()
	if due {
		l.limiter.sweep(now)
	}
}
