package oidc

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/oauth2"
)

// FuzzClassifyRefreshError feeds arbitrary OAuth error answers (what a
// provider's token endpoint returns, as the oauth2 package parses it)
// through the recheck's classification: it must never panic, never quote
// the response body, keep provider text short and printable, disable at
// once only for invalid_grant, and never count an answer without an
// OAuth error code as a refusal.
func FuzzClassifyRefreshError(f *testing.F) {
	f.Add(400, "invalid_grant", "token revoked")
	f.Add(500, "invalid_request", "user not found")
	f.Add(502, "", "")
	f.Add(503, "temporarily_unavailable", "")
	f.Add(401, "invalid_client", "bad secret")
	f.Add(400, "weird\ncode", "line\nbreak\x1b[31m\xff")
	const secret = "BODY-SECRET"
	f.Fuzz(func(t *testing.T, status int, code, desc string) {
		re := &oauth2.RetrieveError{Response: &http.Response{StatusCode: status}, Body: []byte(secret),
			ErrorCode: code, ErrorDescription: desc}
		err := classifyRefreshError(re)
		msg := err.Error()
		if strings.Contains(msg, secret) || len(msg) > 600 || !utf8.ValidString(msg) {
			t.Fatalf("message %q", msg)
		}
		for _, r := range msg {
			if !unicode.IsPrint(r) {
				t.Fatalf("unprintable %q in %q", r, msg)
			}
		}
		var r *refusal
		var a *providerRefusal
		var na *noAnswer
		switch {
		case errors.As(err, &r):
			if code != "invalid_grant" {
				t.Fatalf("%q disables at once", code)
			}
		case errors.As(err, &a):
			if code == "" || code == "invalid_grant" {
				t.Fatalf("%q counted as a refusal", code)
			}
		case !errors.As(err, &na):
			t.Fatalf("unclassified: %T", err)
		}
	})
}
