package login

import (
	"context"
	"errors"
	"sync"

	"github.com/warrenmesh/warren/internal/key"
)

// ErrLoginOver ends the login of a method whose sign-in was completed (or
// refused) through another method of the same choice: one login has one
// outcome.
var ErrLoginOver = errors.New("this sign-in has already finished with another method: run 'warren up' on the device again if it is not connected")

// ErrProviderUnavailable refuses a sign-in while the identity provider
// cannot be reached; the node is told to try again later.
var ErrProviderUnavailable = errors.New("the identity provider is unreachable; try again in a minute (the coordinator keeps trying to reach it; an admin should check the provider and the coordinator's connection to it)")

// Shared ties together the logins several methods keep for one sign-in
// (package choice offers them on one page), so that it has one outcome.
// A method settles it before it records a sign-in or ends its login with
// a final refusal or failure; the first member to settle has the outcome,
// and every other member's login is ended at once (with ErrLoginOver), so
// that its links say the sign-in is over and do nothing. A nil *Shared is
// a login of one method: Settle always succeeds. Its methods are safe for
// concurrent use.
type Shared struct {
	console bool // immutable: the sign-in is to the web console

	mu     sync.Mutex
	winner int      // the member that settled; 0 while none has
	ends   []func() // ends[i] ends member i+1's login
}

// NewShared returns a Shared with no members.
func NewShared() *Shared { return &Shared{} }

// NewConsoleShared returns a Shared for a sign-in to the web console: the
// methods that join it send the browser to ConsoleFinishPath when the
// sign-in succeeds, and mark the Identity they prove as Console.
func NewConsoleShared() *Shared { return &Shared{console: true} }

// Console reports whether s is a console sign-in's (false for nil).
func (s *Shared) Console() bool { return s != nil && s.console }

// Join adds a member and returns its number for Settle. end (which may be
// nil) ends the member's own login; it is called once, outside any lock
// of s, when another member settles — at once if one already has.
func (s *Shared) Join(end func()) int {
	s.mu.Lock()
	s.ends = append(s.ends, end)
	m, settled := len(s.ends), s.winner != 0
	s.mu.Unlock()
	if settled && end != nil {
		end()
	}
	return m
}

// Settle claims the outcome for member m and reports whether m has it
// (now or already). When it returns false another member has it, and m
// must record nothing: its own login has been ended. Call it outside
// locks the members' end functions take.
func (s *Shared) Settle(m int) bool {
	if s == nil {
		return true
	}
	s.mu.Lock()
	if s.winner != 0 {
		won := s.winner == m
		s.mu.Unlock()
		return won
	}
	s.winner = m
	ends := s.ends
	s.mu.Unlock()
	for i, end := range ends {
		if i+1 != m && end != nil {
			end()
		}
	}
	return true
}

// Settled reports whether a member has settled s.
func (s *Shared) Settled() bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.winner != 0
}

// Joiner is implemented by a Login that can be one method of a choice:
// BeginShared is Begin for a login that joins s as a member.
type Joiner interface {
	BeginShared(ctx context.Context, machine key.MachinePublic, source string, s *Shared) (url string, err error)
}
