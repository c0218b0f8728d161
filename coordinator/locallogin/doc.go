// Package locallogin signs in local users — accounts that live in the
// coordinator's store rather than at an OpenID Provider — so that a mesh can
// be bootstrapped without an IdP. It provides the credential primitives
// (argon2id password hashes in PHC form, TOTP codes), the interactive login
// behind auth.Login (Begin hands out a single-use URL, Handler serves the
// sign-in form there, Wait returns the user once the form was filled in
// correctly) and the admin-side helpers SetPassword and EnrollTOTP.
//
// Rules enforced here: a user without a password hash cannot sign in; a user
// with a TOTP secret must give a fresh code (and then MFAAt is set), each
// code at most once; an admin without TOTP is refused; disabled users are
// refused; failed attempts are limited per login and per user name. Every
// outcome is audited as action "login.local".
//
// This package must never log, audit, store or echo a password or a TOTP
// code, and never reveal a stored hash or secret except the freshly enrolled
// secret returned once by EnrollTOTP. Login URLs are bearer secrets until
// used: they are never logged either.
package locallogin
