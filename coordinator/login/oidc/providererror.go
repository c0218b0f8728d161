package oidc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/oauth2"
)

// providerError is what went wrong in a call to the provider's token
// endpoint, in words an admin can act on: the OAuth error code, its
// description (shortened, printable only) and the HTTP status when the
// provider answered, the network error when it did not. It never holds
// the response body or a token.
type providerError struct {
	Code        string // RFC 6749 "error"; "" if the provider did not answer with one
	Description string // RFC 6749 "error_description", clipped
	Status      int    // HTTP status of the answer; 0 if none came
	Network     string // the transport error when no answer came
}

// describeProviderError classifies err from an oauth2 token request.
func describeProviderError(err error) providerError {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		pe := providerError{Code: printable(re.ErrorCode, 64), Description: printable(re.ErrorDescription, 200)}
		if re.Response != nil {
			pe.Status = re.Response.StatusCode
		}
		return pe
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return providerError{Network: "no answer in time (timeout)"}
	}
	// A transport error names the endpoint and the network failure
	// ("Post \"https://idp/token\": dial tcp ...: connection refused");
	// the request's form, which holds the code or token, is not in it.
	return providerError{Network: printable(strings.TrimPrefix(err.Error(), "oauth2: cannot fetch token: "), 300)}
}

// answered reports whether the provider sent an answer (as opposed to a
// network failure or timeout).
func (p providerError) answered() bool { return p.Network == "" }

// String says what happened, for logs, audit events and error messages.
func (p providerError) String() string {
	if !p.answered() {
		return "the identity provider could not be reached: " + p.Network
	}
	s := fmt.Sprintf("the identity provider answered HTTP %d", p.Status)
	if p.Status != 0 {
		s += " " + http.StatusText(p.Status)
	}
	if p.Code != "" {
		s += fmt.Sprintf(" with error %q", p.Code)
	}
	if p.Description != "" {
		s += fmt.Sprintf(" (%s)", p.Description)
	}
	return s
}

// Hint says what an admin should check.
func (p providerError) Hint() string {
	switch {
	case !p.answered():
		return "check that the coordinator can reach the provider's token endpoint (DNS, firewall, proxy, TLS certificates) and that the provider is up"
	case p.Code == "invalid_client" || p.Code == "unauthorized_client" || p.Status == http.StatusUnauthorized:
		return "check the client ID and secret (--oidc-client-id, --oidc-client-secret-file) against the client registered at the provider"
	case p.Code == "invalid_grant":
		return "the code or refresh token was refused: it expired, was used already, or was revoked; check that the redirect URI registered at the provider is exactly the coordinator's public URL + " + CallbackPath + " and that the clocks agree"
	case p.Status >= 500:
		return "the provider failed; see its log for this request"
	default:
		return "see the provider's log and documentation for this error"
	}
}

// Detail is the audit detail of p.
func (p providerError) Detail() map[string]any {
	d := map[string]any{"provider_hint": p.Hint()}
	if !p.answered() {
		d["network_error"] = p.Network
		return d
	}
	d["provider_status"] = p.Status
	if p.Code != "" {
		d["provider_error"] = p.Code
	}
	if p.Description != "" {
		d["provider_error_description"] = p.Description
	}
	return d
}

// LogAttrs are p's fields for a log line.
func (p providerError) LogAttrs() []any {
	if !p.answered() {
		return []any{"network_error", p.Network, "hint", p.Hint()}
	}
	return []any{"status", p.Status, "error", p.Code, "error_description", p.Description, "hint", p.Hint()}
}

// printable returns the provider-chosen s with every character that is
// not printable (newlines, controls, invalid UTF-8) replaced by '?', so it
// cannot forge log lines, cut to at most n bytes (at a rune boundary, then
// marked with "…").
func printable(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r == unicode.ReplacementChar || !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
