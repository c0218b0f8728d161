// Package local signs in local users — accounts that live in the
// coordinator's store rather than at an OpenID Provider — so that a mesh can
// be bootstrapped without an IdP, or reached by a break-glass account. It
// is a login.Login: Begin hands out a single-use URL, Handler serves the
// sign-in form there, Wait returns the user once the form was filled in
// correctly.
//
// Rules enforced here: a user without a password hash cannot sign in; a user
// with a TOTP secret must give a fresh code (which then counts as MFA), each
// code at most once, across restarts (the registry keeps the last step
// used); an admin without TOTP is refused; disabled users are refused;
// failed attempts end a login after MaxAttemptsPerLogin and lock a (user,
// source address) pair out with a growing backoff, never the user
// everywhere. A correct sign-in is handed to login.Users (the registry),
// which records it; every refused attempt is audited here as "login.local".
//
// This package must never write the store, and never log, audit, store or
// echo a password or a TOTP code, or reveal a stored hash or secret. Login
// URLs are bearer secrets until used: they are never logged either.
package local
