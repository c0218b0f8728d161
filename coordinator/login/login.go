// Package login is how people sign in to the coordinator so that a device
// joins the mesh as theirs. A node that registers without a pre-auth key
// gets a URL from a Login (Begin); its user opens it in a browser and signs
// in with one of the configured methods — an OpenID Provider (package
// oidc) or a local account (package local), or a page offering both
// (package choice) — and the coordinator's Wait returns the user.
//
// The web console signs people in with the same logins: it begins one
// (Joiner.BeginShared) with a Shared from NewConsoleShared for a random
// machine key that names the browser's sign-in, and the methods then
// send the browser back to the fixed ConsoleFinishPath instead of saying
// "your device is joining", and mark the Identity as Console.
//
// The tree has one job per package: credential holds the primitives
// (argon2id password hashes, TOTP codes), Table is the one pending-login
// table every method keeps its logins in (bounded in total, per source
// address and per machine), Shared gives the methods a choice offers one
// outcome (the first to finish ends the others), and each method proves
// an Identity and hands
// it to Users, which the registry implements: login methods never write
// the store themselves, so that every change to a user commits with its
// audit event in one place.
//
// Nothing in this tree may log, audit or store a password, a TOTP code, a
// token, a sign-in URL or any other secret.
package login

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
)

// ErrNoLogin is returned when a node asks for interactive login and the
// coordinator has no login configured.
var ErrNoLogin = errors.New("this coordinator has no interactive login configured: join with --auth-key (ask an admin for a pre-auth key)")

// ErrRefused is wrapped by every sign-in refusal (as opposed to a
// failure): the identity provider or the rules said no.
var ErrRefused = errors.New("login refused")

// ErrCodeReused is the refusal of a TOTP code whose time step the user
// has already used.
var ErrCodeReused = fmt.Errorf("%w: this TOTP code was already used", ErrRefused)

// ErrAccountDisabled is the refusal of a sign-in by a user whose account
// on this coordinator is disabled.
var ErrAccountDisabled = fmt.Errorf("%w: the account is disabled", ErrRefused)

// Login is the hook for interactive login. The coordinator calls Begin
// when a node without a pre-auth key registers and sends the URL to the
// node; the node shows it to its user and asks again with the URL as
// follow-up, and the coordinator calls Wait until the user has signed in.
type Login interface {
	// Begin starts a login for the machine, whose control connection
	// comes from source (an address, "ip:port" or "ip"), and returns the
	// URL the user must open.
	Begin(ctx context.Context, machine key.MachinePublic, source string) (url string, err error)
	// Wait blocks until the login at url completes (returning the user,
	// once) or fails, or ctx ends.
	Wait(ctx context.Context, machine key.MachinePublic, url string) (store.User, error)
}

// ConsoleFinishPath is where a sign-in to the web console ends: the
// final page of a method's successful console sign-in sends the browser
// there (a fixed path of this coordinator, never one taken from a
// request), and the console collects the outcome with Wait.
const ConsoleFinishPath = "/admin/login/finish"

// Methods of an Identity.
const (
	MethodOIDC  = "oidc"
	MethodLocal = "local"
)

// Identity is what a sign-in method proved about the person in the
// browser. The method hands it to Users.SignIn, which maps it to a stored
// user.
type Identity struct {
	// Method is MethodOIDC or MethodLocal.
	Method string
	// Machine is the device the sign-in is for; Remote the browser's
	// address.
	Machine key.MachinePublic
	Remote  string

	// UserID is the local account whose password (and code) was given.
	UserID store.UserID
	// TOTPStep is the time step of the TOTP code given (0: none); a step
	// is accepted once per user, across restarts.
	TOTPStep int64

	// Issuer and Subject identify an OIDC user at its provider; Email,
	// Groups and RefreshToken are what the provider says now.
	Issuer, Subject string
	Email           string
	Name            string // display name ("" when the provider gave none)
	Groups          []string
	RefreshToken    string

	// MFA is set when the sign-in used a second factor.
	MFA bool
	// Console is set when the person signed in to the web console (the
	// login's Shared came from NewConsoleShared) rather than for a
	// device: Machine is then a random key naming the browser's login.
	Console bool
	// Detail is added to the audit event (never a secret).
	Detail map[string]any
}

// Recheck is what an OpenID Provider said about a user when asked again
// with their refresh token (see package oidc).
type Recheck struct {
	// Revoked is set when the provider (or the claim rules) no longer
	// accept the user; Reason says why.
	Revoked bool
	Reason  string
	// Refused, without Revoked, is a refusal that does not disable the
	// user yet (the provider must refuse several checks in a row);
	// Unanswered says the provider has not answered about the user for
	// longer than the alert bound. ApplyRecheck audits either, with
	// Reason, and changes nothing else.
	Refused, Unanswered bool
	// Identity holds the provider's current answer when the user is
	// accepted.
	Identity Identity
}

// Users turns what sign-in methods prove into stored users. The registry
// implements it and is the only writer: each call commits the user's
// change with its audit event.
type Users interface {
	// SignIn maps id to a stored user (creating or updating it as the
	// method's rules say) and records the sign-in. A refusal wraps
	// ErrRefused.
	SignIn(ctx context.Context, id Identity) (store.User, error)
	// ApplyRecheck records what a provider said about user u: a revoked
	// user is disabled, changed claims are stored. It reports whether
	// anything visible changed.
	ApplyRecheck(ctx context.Context, u store.User, r Recheck) (changed bool, err error)
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
