package oidc

// The tests' OpenID Provider is internal/tstest/oidctest's real in-process
// provider; this file registers the tests' accounts and clients with it and
// holds the JWT surgery the security tests use to play an attacker.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/internal/tstest/oidctest"
)

// testUsers are the provider's accounts (all with password
// oidctest.Password).
var testUsers = []oidctest.User{
	{Subject: "sub-ann", Username: "ann", Email: "Ann@Example.com", EmailVerified: true, FirstName: "Ann", LastName: "A",
		Groups: []string{"eng", "ops"}, Claims: map[string]any{"hd": "example.com"}},
	{Subject: "sub-bob", Username: "bob", Email: "bob@example.com", EmailVerified: true,
		Groups: []string{"eng"}, AMR: []string{"pwd", "otp"}},
	{Subject: "sub-cat", Username: "cat", Email: "cat@example.com", EmailVerified: true,
		AMR: []string{"pwd"}, ACR: "phr"},
	{Subject: "sub-eve", Username: "eve", Email: "eve@evil.test", EmailVerified: true},
	{Subject: "sub-uma", Username: "uma", Email: "uma@example.com", EmailVerified: false},
}

// Test clients of every provider.
const (
	clientWeb    = "warren"        // confidential, claims via userinfo
	clientSecret = "web-secret"    // its secret
	clientPublic = "warren-public" // public (PKCE only), claims in the ID token
	clientOther  = "other-app"     // another application at the same provider
)

// newTestOP starts a provider with testUsers whose clients redirect to
// redirectURL.
func newTestOP(t testing.TB, redirectURL string) *oidctest.Provider {
	t.Helper()
	return oidctest.New(t, oidctest.Config{
		Users:               testUsers,
		RotateRefreshTokens: true, // as Dex does
		Clients: []oidctest.Client{
			{ID: clientWeb, Secret: clientSecret, RedirectURL: redirectURL},
			{ID: clientPublic, RedirectURL: redirectURL, ClaimsInIDToken: true},
			{ID: clientOther, Secret: "other-secret", RedirectURL: "http://127.0.0.1:1/cb", ClaimsInIDToken: true},
		},
	})
}

// unverifiedClaims decodes a JWT's payload without checking anything; the
// tests use it only to build tampered tokens.
func unverifiedClaims(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("decode JWT payload: %v", err)
	}
	claims := map[string]any{}
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatalf("decode JWT claims: %v", err)
	}
	return claims
}

// withPayload returns jwt with its payload replaced by claims, keeping the
// original header and signature.
func withPayload(t *testing.T, jwt string, claims map[string]any) string {
	t.Helper()
	parts := strings.Split(jwt, ".")
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

// flipSignature changes one byte of jwt's signature.
func flipSignature(jwt string) string {
	i := strings.LastIndexByte(jwt, '.')
	sig, err := base64.RawURLEncoding.DecodeString(jwt[i+1:])
	if err != nil || len(sig) == 0 {
		return jwt + "x"
	}
	sig = bytes.Clone(sig)
	sig[len(sig)/2] ^= 0x01
	return jwt[:i+1] + base64.RawURLEncoding.EncodeToString(sig)
}
