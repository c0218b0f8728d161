package auth

import (
	"context"
	"errors"
	"net/http"

	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
)

// ErrNoLogin is returned when a node asks for interactive login and the
// coordinator has no login configured.
var ErrNoLogin = errors.New("this coordinator has no interactive login configured: join with --auth-key (ask an admin for a pre-auth key)")

// Login is the hook for interactive login (OIDC). The coordinator calls
// Begin when a node without a pre-auth key registers and sends the URL to
// the node; the node shows it to its user and asks again with the URL as
// follow-up, and the coordinator calls Wait until the user has signed in.
type Login interface {
	// Begin starts a login for the machine and returns the URL the user
	// must open.
	Begin(ctx context.Context, machine key.MachinePublic) (url string, err error)
	// Wait blocks until the login at url completes (returning the user) or
	// fails, or ctx ends.
	Wait(ctx context.Context, machine key.MachinePublic, url string) (store.User, error)
}

// SetPageHeaders sets the headers every sign-in page sends: never cached
// and no Referer (sign-in URLs are secrets until used), never framed or
// content-sniffed, and a content policy that allows only inline styles and
// forms posted back to the coordinator.
func SetPageHeaders(h http.Header) {
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
}
