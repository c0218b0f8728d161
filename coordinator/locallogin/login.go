package locallogin

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/auth"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
)

// LoginPath is where Handler serves sign-in forms: a login's URL is
// Config.BaseURL + LoginPath + its id. Mount Handler at this path.
const LoginPath = "/login/local/"

// Defaults of Config.
const (
	DefaultLoginTimeout = 10 * time.Minute
	DefaultMaxPending   = 1000
)

// maxConcurrentHashes bounds how many argon2 checks run at once (each
// takes the hash's memory cost, 64 MiB by default).
const maxConcurrentHashes = 2

// sweepEvery is how often Begin drops expired logins and stale limiter
// state (and whenever the pending table is full).
const sweepEvery = 30 * time.Second

// Errors returned by Begin and Wait. Each says what to do next.
var (
	ErrUnknownLogin    = errors.New("unknown local login: this URL was not issued to this device or was already used; run `warren up` again for a new one")
	ErrLoginExpired    = errors.New("local login expired: nobody signed in in time; run `warren up` again for a new URL")
	ErrTooManyAttempts = errors.New("local login failed after too many wrong attempts; run `warren up` again for a new URL")
	ErrSuperseded      = errors.New("local login replaced by a newer login of the same device; use the newest URL")
	ErrTooManyLogins   = errors.New("too many local logins in progress; try again in a few minutes")
	ErrClosed          = errors.New("local login is shutting down; try again when the coordinator is back")
)

// Config configures a Login.
type Config struct {
	// Store holds the users. Required.
	Store store.Store
	// Audit receives an event for every sign-in attempt; nil means events
	// go to Logger only.
	Audit *audit.Log
	// Logger for operational messages; nil discards them.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// BaseURL is the coordinator's public URL ("https://warren.example.com");
	// Begin returns BaseURL + LoginPath + <id>. Required.
	BaseURL string
	// LoginTimeout is how long a login URL stays usable (default 10 min).
	LoginTimeout time.Duration
	// MaxPending bounds the logins in progress (default 1000); Begin
	// returns ErrTooManyLogins beyond it.
	MaxPending int
	// OnUserChanged, if set, is called after a sign-in changed the user's
	// MFAAt (so that its nodes' netmaps can be republished). It runs on
	// the HTTP request's goroutine after the login completed, so it should
	// not block for long.
	OnUserChanged func(ctx context.Context, id store.UserID)
}

// Login runs interactive sign-ins of local users. It implements auth.Login;
// its Handler serves the sign-in form. All methods are safe for concurrent
// use. It starts no goroutines; Close fails the logins in progress.
type Login struct {
	st            store.Store
	audit         *audit.Log
	log           *slog.Logger
	now           func() time.Time
	prefix        string // BaseURL + LoginPath
	secureCookie  bool
	timeout       time.Duration
	maxPending    int
	onUserChanged func(context.Context, store.UserID)
	hashes        chan struct{} // semaphore for argon2 checks
	dummyHash     func() string // a hash to check against for unknown users
	names         *nameLimiter

	mu        sync.Mutex
	closed    bool
	lastSweep time.Time
	pending   map[string]*pending
	byMachine map[key.MachinePublic]*pending
	lastStep  map[store.UserID]int64 // last TOTP step used, per user
}

// pending is one login in progress. Guarded by Login.mu.
type pending struct {
	id       string // the secret in the URL; never logged
	machine  key.MachinePublic
	expires  time.Time
	cookie   string // SameSite cookie value binding form and submit
	failures int
	busy     bool          // an attempt is being checked
	done     chan struct{} // closed when finished
	finished bool
	consumed bool // Wait has returned the result
	user     store.User
	err      error
}

var _ auth.Login = (*Login)(nil)

// New returns a Login for cfg.
func New(cfg Config) (*Login, error) {
	if cfg.Store == nil {
		return nil, errors.New("local login: no store configured")
	}
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" ||
		base.RawQuery != "" || base.Fragment != "" || base.User != nil {
		return nil, fmt.Errorf("local login: base URL %q must be an absolute http(s) URL like https://warren.example.com", cfg.BaseURL)
	}
	l := &Login{
		st:            cfg.Store,
		audit:         cfg.Audit,
		log:           cfg.Logger,
		now:           cfg.Now,
		prefix:        strings.TrimRight(cfg.BaseURL, "/") + LoginPath,
		secureCookie:  base.Scheme == "https",
		timeout:       cfg.LoginTimeout,
		maxPending:    cfg.MaxPending,
		onUserChanged: cfg.OnUserChanged,
		hashes:        make(chan struct{}, maxConcurrentHashes),
		names:         newNameLimiter(),
		pending:       make(map[string]*pending),
		byMachine:     make(map[key.MachinePublic]*pending),
		lastStep:      make(map[store.UserID]int64),
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.audit == nil {
		l.audit = audit.New(nil, l.log)
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.timeout <= 0 {
		l.timeout = DefaultLoginTimeout
	}
	if l.maxPending <= 0 {
		l.maxPending = DefaultMaxPending
	}
	l.dummyHash = sync.OnceValue(func() string {
		h, _ := HashPassword("not a password: equalises the timing for unknown users")
		return h
	})
	return l, nil
}

// Begin starts a login for machine and returns the URL its user must open.
// The URL holds a random 192-bit id and works once. A newer Begin for the
// same machine replaces its older login.
func (l *Login) Begin(ctx context.Context, machine key.MachinePublic) (string, error) {
	if machine.IsZero() {
		return "", errors.New("begin local login: no machine key")
	}
	id, err := randomToken(24)
	if err != nil {
		return "", fmt.Errorf("begin local login: %w", err)
	}
	cookie, err := randomToken(16)
	if err != nil {
		return "", fmt.Errorf("begin local login: %w", err)
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return "", ErrClosed
	}
	if old := l.byMachine[machine]; old != nil {
		l.finishLocked(old, store.User{}, ErrSuperseded)
		l.removeLocked(old)
	}
	if len(l.pending) >= l.maxPending || now.Sub(l.lastSweep) >= sweepEvery {
		l.sweepLocked(now)
	}
	if len(l.pending) >= l.maxPending {
		return "", ErrTooManyLogins
	}
	p := &pending{id: id, machine: machine, expires: now.Add(l.timeout), cookie: cookie, done: make(chan struct{})}
	l.pending[id] = p
	l.byMachine[machine] = p
	return l.prefix + id, nil
}

// Wait blocks until the login at loginURL, begun by Begin for the same
// machine, completes or fails, or ctx ends. It returns the signed-in user
// (with MFAAt updated if a code was given) once; later calls with the same
// URL return ErrUnknownLogin. If ctx ends first the login stays open and
// Wait may be called again.
func (l *Login) Wait(ctx context.Context, machine key.MachinePublic, loginURL string) (store.User, error) {
	id, ok := strings.CutPrefix(loginURL, l.prefix)
	if !ok || id == "" {
		return store.User{}, ErrUnknownLogin
	}
	l.mu.Lock()
	p := l.lookupLocked(id, l.now())
	if p == nil || p.machine != machine {
		l.mu.Unlock()
		return store.User{}, ErrUnknownLogin
	}
	remaining := p.expires.Sub(l.now())
	l.mu.Unlock()

	timer := time.NewTimer(max(remaining, 0))
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		l.mu.Lock()
		l.finishLocked(p, store.User{}, ErrLoginExpired)
		l.mu.Unlock()
	case <-ctx.Done():
		return store.User{}, fmt.Errorf("wait for local login: %w", context.Cause(ctx))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if p.consumed {
		return store.User{}, ErrUnknownLogin
	}
	p.consumed = true
	l.removeLocked(p)
	return p.user, p.err
}

// Close fails every login in progress with ErrClosed (waking their Waits)
// and makes Begin refuse new ones.
func (l *Login) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for _, p := range l.pending {
		l.finishLocked(p, store.User{}, ErrClosed)
		l.removeLocked(p)
	}
	return nil
}

// lookupLocked returns the live or finished login with id, dropping it if
// it has expired.
func (l *Login) lookupLocked(id string, now time.Time) *pending {
	p := l.pending[id]
	if p == nil {
		return nil
	}
	if !now.Before(p.expires) {
		l.finishLocked(p, store.User{}, ErrLoginExpired)
		l.removeLocked(p)
		return nil
	}
	return p
}

// finishLocked ends p with a result unless it has one already.
func (l *Login) finishLocked(p *pending, u store.User, err error) {
	if p.finished {
		return
	}
	p.finished, p.user, p.err = true, u, err
	close(p.done)
}

// removeLocked forgets p (its Waiters keep their pointer).
func (l *Login) removeLocked(p *pending) {
	if l.pending[p.id] == p {
		delete(l.pending, p.id)
	}
	if l.byMachine[p.machine] == p {
		delete(l.byMachine, p.machine)
	}
}

// sweepLocked drops expired logins, TOTP steps that can no longer be
// replayed and name-limiter state that has left its window.
func (l *Login) sweepLocked(now time.Time) {
	l.lastSweep = now
	for _, p := range l.pending {
		if !now.Before(p.expires) {
			l.finishLocked(p, store.User{}, ErrLoginExpired)
			l.removeLocked(p)
		}
	}
	oldest := totpStep(now) - totpSkew
	for id, s := range l.lastStep {
		if s < oldest {
			delete(l.lastStep, id)
		}
	}
	l.names.sweep(now)
}

// useStep records that user id used the TOTP code of step, reporting false
// if that step (or a later one) was used already.
func (l *Login) useStep(id store.UserID, step int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if last, ok := l.lastStep[id]; ok && step <= last {
		return false
	}
	l.lastStep[id] = step
	return true
}

// randomToken returns n random bytes in unpadded base64url.
func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
