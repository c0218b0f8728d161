package login

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
)

// Defaults of TableConfig.
const (
	DefaultTimeout      = 10 * time.Minute
	DefaultMaxPending   = 1000
	DefaultMaxPerSource = 32
)

// Errors of the pending-login table. Each says what to do next.
var (
	ErrUnknownLogin  = errors.New("unknown or expired login URL: run 'warren up' again to get a new one")
	ErrLoginExpired  = errors.New("login not completed in time: run 'warren up' again and finish signing in within the time limit")
	ErrSuperseded    = errors.New("login replaced by a newer login from the same device: use the newest login URL")
	ErrTooManyLogins = errors.New("too many sign-ins in progress on this coordinator: try again in a few minutes")
	// ErrTooManyFromSource wraps ErrTooManyLogins: the bound is the one
	// of the caller's own address.
	ErrTooManyFromSource = fmt.Errorf("%w from this network address", ErrTooManyLogins)
	ErrClosed            = errors.New("sign-in is shutting down: try again when the coordinator is back")
)

// TableConfig bounds a Table.
type TableConfig struct {
	// Timeout is how long a login stays open; default DefaultTimeout.
	Timeout time.Duration
	// Max bounds the logins open at once; default DefaultMaxPending.
	Max int
	// MaxPerSource bounds the logins open at once from one source
	// address (an IPv4 address or an IPv6 /64); default
	// DefaultMaxPerSource. A device has at most one: its newest.
	MaxPerSource int
	// OnExpire, if set, is called (outside the table's lock) with the
	// machine of each login that timed out without an outcome.
	OnExpire func(machine key.MachinePublic)
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Table is the pending-login table every sign-in method keeps its logins
// in, each login with method state S. A login is known by a random ID (a
// bearer secret, in its URL), belongs to one machine (a newer login of the
// same machine supersedes it), counts against its source address, and
// ends with one outcome that Wait returns once. Its methods are safe for
// concurrent use; it starts no goroutines.
type Table[S any] struct {
	cfg TableConfig

	mu        sync.Mutex
	closed    bool
	byID      map[string]*Entry[S]
	byMachine map[key.MachinePublic]*Entry[S]
	bySource  map[string]int
}

// Entry is one login. Its fields other than ID, Machine and Expires, and
// its State, are guarded by the table: use them inside Table.With only.
type Entry[S any] struct {
	ID      string
	Machine key.MachinePublic
	Expires time.Time
	State   S

	source   string
	shared   *Shared // the outcome shared with other methods (nil: none)
	member   int     // this login's member number in shared
	done     chan struct{}
	finished bool
	consumed bool
	user     store.User
	err      error
}

// Finished reports whether the login has its outcome (inside With only).
func (e *Entry[S]) Finished() bool { return e.finished }

// SharedSettled reports whether another method of the same choice has
// settled the login's shared outcome (inside With only; false without
// one).
func (e *Entry[S]) SharedSettled() bool { return e.shared.Settled() }

// ForConsole reports whether the login signs a person in to the web
// console (see NewConsoleShared) (inside With only).
func (e *Entry[S]) ForConsole() bool { return e.shared.Console() }

// Outcome returns the login's outcome once finished (inside With only).
func (e *Entry[S]) Outcome() (store.User, error) { return e.user, e.err }

// NewTable returns an empty table.
func NewTable[S any](cfg TableConfig) *Table[S] {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Max <= 0 {
		cfg.Max = DefaultMaxPending
	}
	if cfg.MaxPerSource <= 0 {
		cfg.MaxPerSource = DefaultMaxPerSource
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Table[S]{cfg: cfg, byID: map[string]*Entry[S]{}, byMachine: map[key.MachinePublic]*Entry[S]{}, bySource: map[string]int{}}
}

// Timeout returns how long a login stays open.
func (t *Table[S]) Timeout() time.Duration { return t.cfg.Timeout }

// Begin opens a login for machine from source with initial state s. An
// open login of the same machine is superseded. It fails with
// ErrTooManyFromSource or ErrTooManyLogins when a bound is reached, and
// ErrClosed after Close.
func (t *Table[S]) Begin(machine key.MachinePublic, source string, s S) (*Entry[S], error) {
	if machine.IsZero() {
		return nil, errors.New("begin login: no machine key")
	}
	now := t.cfg.Now()
	src := SourceKey(source)
	t.mu.Lock()
	expired := t.sweepLocked(now)
	if old := t.byMachine[machine]; old != nil {
		t.finishLocked(old, store.User{}, ErrSuperseded)
		t.removeLocked(old)
	}
	var err error
	switch {
	case t.closed:
		err = ErrClosed
	case t.bySource[src] >= t.cfg.MaxPerSource:
		err = ErrTooManyFromSource
	case len(t.byID) >= t.cfg.Max:
		err = ErrTooManyLogins
	}
	var e *Entry[S]
	if err == nil {
		e = &Entry[S]{ID: rand.Text(), Machine: machine, Expires: now.Add(t.cfg.Timeout), State: s, source: src, done: make(chan struct{})}
		t.byID[e.ID], t.byMachine[machine] = e, e
		t.bySource[src]++
	}
	t.mu.Unlock()
	t.reportExpired(expired)
	return e, err
}

// With runs fn under the table's lock on the open (possibly finished,
// not yet collected) login with id, and returns fn's error, or
// ErrUnknownLogin if there is no such login.
func (t *Table[S]) With(id string, fn func(e *Entry[S]) error) error {
	now := t.cfg.Now()
	t.mu.Lock()
	expired := t.sweepLocked(now)
	e := t.byID[id]
	var err error
	if e == nil {
		err = ErrUnknownLogin
	} else {
		err = fn(e)
	}
	t.mu.Unlock()
	t.reportExpired(expired)
	return err
}

// JoinShared makes login e one method of a choice whose outcome s holds
// (see Shared): when another method settles s first, e ends with
// ErrLoginOver.
func (t *Table[S]) JoinShared(e *Entry[S], s *Shared) {
	m := s.Join(func() { t.Finish(e, store.User{}, ErrLoginOver) })
	t.mu.Lock()
	e.shared, e.member = s, m
	t.mu.Unlock()
}

// Settle claims the shared outcome for login e before its method signs
// someone in or ends it for good. It reports false if another method has
// the outcome (e has then been ended and must record nothing); a login
// that shares nothing always has its own.
func (t *Table[S]) Settle(e *Entry[S]) bool {
	t.mu.Lock()
	sh, m := e.shared, e.member
	t.mu.Unlock()
	return sh.Settle(m)
}

// ForConsole reports whether login e signs a person in to the web
// console (see NewConsoleShared).
func (t *Table[S]) ForConsole(e *Entry[S]) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return e.shared.Console()
}

// Finish gives e its outcome and wakes its Wait. It reports false if e
// had one already (which is kept).
func (t *Table[S]) Finish(e *Entry[S], u store.User, err error) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.finishLocked(e, u, err)
}

// FinishLocked is Finish for use inside With.
func (t *Table[S]) FinishLocked(e *Entry[S], u store.User, err error) bool {
	return t.finishLocked(e, u, err)
}

// Wait blocks until the login with id, begun for machine, has its
// outcome, its time is up, or ctx ends, and returns the outcome once:
// the login is then forgotten, except one that ended with ErrLoginOver
// (another method of a choice finished it), which stays until it expires
// so that its links can say so. If ctx ends first the login stays open.
func (t *Table[S]) Wait(ctx context.Context, machine key.MachinePublic, id string) (store.User, error) {
	var e *Entry[S]
	err := t.With(id, func(x *Entry[S]) error {
		if x.Machine != machine || x.consumed {
			return ErrUnknownLogin
		}
		e = x
		return nil
	})
	if err != nil {
		return store.User{}, err
	}
	timer := time.NewTimer(max(e.Expires.Sub(t.cfg.Now()), 0))
	defer timer.Stop()
	select {
	case <-e.done:
	case <-timer.C:
		t.mu.Lock()
		timedOut := t.finishLocked(e, store.User{}, ErrLoginExpired)
		t.mu.Unlock()
		if timedOut {
			t.reportExpired([]key.MachinePublic{e.Machine})
		}
	case <-ctx.Done():
		return store.User{}, fmt.Errorf("wait for sign-in: %w", context.Cause(ctx))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if e.consumed {
		return store.User{}, ErrUnknownLogin
	}
	e.consumed = true
	if !errors.Is(e.err, ErrLoginOver) {
		t.removeLocked(e)
	} // else it stays, finished, until it expires or its machine begins again, so that its links say the sign-in is over
	return e.user, e.err
}

// Close ends every open login with ErrClosed and makes Begin refuse new
// ones.
func (t *Table[S]) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for _, e := range t.byID {
		t.finishLocked(e, store.User{}, ErrClosed)
		t.removeLocked(e)
	}
}

// Len returns how many logins are open.
func (t *Table[S]) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byID)
}

func (t *Table[S]) finishLocked(e *Entry[S], u store.User, err error) bool {
	if e.finished {
		return false
	}
	e.finished, e.user, e.err = true, u, err
	close(e.done)
	return true
}

func (t *Table[S]) removeLocked(e *Entry[S]) {
	if t.byID[e.ID] != e {
		return
	}
	delete(t.byID, e.ID)
	if t.byMachine[e.Machine] == e {
		delete(t.byMachine, e.Machine)
	}
	if t.bySource[e.source]--; t.bySource[e.source] <= 0 {
		delete(t.bySource, e.source)
	}
}

// sweepLocked ends and forgets every login past its time, returning the
// machines of those that ended without an outcome.
func (t *Table[S]) sweepLocked(now time.Time) []key.MachinePublic {
	var expired []key.MachinePublic
	for _, e := range t.byID {
		if now.Before(e.Expires) {
			continue
		}
		if t.finishLocked(e, store.User{}, ErrLoginExpired) {
			expired = append(expired, e.Machine)
		}
		t.removeLocked(e)
	}
	return expired
}

func (t *Table[S]) reportExpired(machines []key.MachinePublic) {
	if t.cfg.OnExpire == nil {
		return
	}
	for _, m := range machines {
		t.cfg.OnExpire(m)
	}
}

// SourceKey is the address a source ("ip:port", "ip" or anything else)
// counts against: the IPv4 address, or the /64 of an IPv6 address, where
// one host usually has many addresses.
func SourceKey(source string) string {
	host := source
	if h, _, err := net.SplitHostPort(source); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return source
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
