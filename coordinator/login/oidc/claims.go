package oidc

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// refusal is a login the rules refuse (as opposed to one that failed). Its
// reason is safe to show the user and to audit: it never holds a token. It
// wraps ErrRefused, and is what Wait returns for the login.
type refusal struct{ reason string }

func (r *refusal) Error() string { return ErrRefused.Error() + ": " + r.reason }
func (r *refusal) Unwrap() error { return ErrRefused }

// refusef returns a refusal with a formatted reason.
func refusef(format string, args ...any) error {
	return &refusal{reason: fmt.Sprintf(format, args...)}
}

// identity is what a verified login says about the user.
type identity struct {
	Subject string
	Email   string // lower case
	Name    string // the "name" claim (display name), bounded; may be empty
	Groups  []string
	MFA     bool
	AMR     []string
	ACR     string
	// RefreshToken is the provider's refresh token, kept only with
	// Config.RefreshChecks (empty otherwise or when none was issued).
	RefreshToken string
}

// verifyIDToken verifies a raw ID token as the callback receives it from
// the token endpoint: signature against the provider's published keys,
// issuer, audience (ClientID), expiry, the authorized party when present,
// and that its nonce is the one this login sent. It returns the verified
// token; nothing in an unverified token is ever trusted.
func (l *Login) verifyIDToken(ctx context.Context, raw, nonce string) (*gooidc.IDToken, error) {
	if raw == "" {
		return nil, refusef("the identity provider returned no ID token (is the openid scope allowed for this client?)")
	}
	tok, err := l.verifier.Verify(gooidc.ClientContext(ctx, l.cfg.HTTPClient), raw)
	if err != nil {
		return nil, refusef("the ID token did not verify: %v", err)
	}
	if nonce == "" || subtle.ConstantTimeCompare([]byte(tok.Nonce), []byte(nonce)) != 1 {
		return nil, refusef("the ID token was not issued for this login (nonce mismatch)")
	}
	var azp struct {
		AZP string `json:"azp"`
	}
	if err := tok.Claims(&azp); err != nil {
		return nil, refusef("the ID token's claims are malformed: %v", err)
	}
	// OIDC Core 3.1.3.7: with several audiences, or an azp at all, the
	// authorized party must be this client.
	if (azp.AZP != "" || len(tok.Audience) > 1) && azp.AZP != l.cfg.ClientID {
		return nil, refusef("the ID token was issued to another client (azp %q)", azp.AZP)
	}
	if tok.Subject == "" {
		return nil, refusef("the ID token has no subject")
	}
	return tok, nil
}

// claims returns the verified ID token's claims, completed from the
// userinfo endpoint when the token lacks the email or a required claim (some
// providers put those only there once an access token is issued). ID token
// claims win over userinfo claims; userinfo is only trusted for the same
// subject.
func (l *Login) claims(ctx context.Context, tok *gooidc.IDToken, access *oauth2.Token) (map[string]any, error) {
	claims := map[string]any{}
	if err := tok.Claims(&claims); err != nil {
		return nil, refusef("the ID token's claims are malformed: %v", err)
	}
	need := !hasString(claims, "email")
	for c := range l.cfg.RequiredClaims {
		if _, ok := claims[c]; !ok {
			need = true
		}
	}
	if !need || l.provider.UserInfoEndpoint() == "" || access == nil || access.AccessToken == "" {
		return claims, nil
	}
	subject, extra, err := l.userinfo(ctx, access)
	if err != nil {
		return nil, err
	}
	if subject != tok.Subject {
		return nil, refusef("the userinfo endpoint answered for another subject")
	}
	for k, v := range extra {
		if _, ok := claims[k]; !ok {
			claims[k] = v
		}
	}
	return claims, nil
}

// userinfo fetches the claims the userinfo endpoint gives for access,
// and the subject they are about; the caller checks that subject.
func (l *Login) userinfo(ctx context.Context, access *oauth2.Token) (subject string, claims map[string]any, err error) {
	info, err := l.provider.UserInfo(gooidc.ClientContext(ctx, l.cfg.HTTPClient), oauth2.StaticTokenSource(access))
	if err != nil {
		return "", nil, fmt.Errorf("fetch userinfo: %w", err)
	}
	claims = map[string]any{}
	if err := info.Claims(&claims); err != nil {
		return "", nil, fmt.Errorf("decode userinfo: %w", err)
	}
	return info.Subject, claims, nil
}

// checkClaims applies the configured rules to a login's claims and returns
// the identity, or a refusal saying which rule the claims broke.
func (l *Login) checkClaims(subject string, claims map[string]any) (identity, error) {
	id := identity{Subject: subject}
	email, _ := claims["email"].(string)
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" {
		return id, refusef("the identity provider sent no email address (allow the email scope for this client)")
	}
	id.Email = email
	at := strings.LastIndexByte(email, '@')
	if at <= 0 || at == len(email)-1 {
		return id, refusef("the email address %q is not valid", email)
	}
	if v, present := claims["email_verified"]; present {
		if ok, known := asBool(v); !known || !ok {
			return id, refusef("the email address %s is not verified at the identity provider", email)
		}
	}
	if domain := email[at+1:]; len(l.cfg.AllowedDomains) > 0 && !slices.Contains(l.cfg.AllowedDomains, domain) {
		return id, refusef("accounts of the email domain %s may not sign in to this network", domain)
	}
	for _, c := range slices.Sorted(maps.Keys(l.cfg.RequiredClaims)) {
		want := l.cfg.RequiredClaims[c]
		got, ok := claimString(claims[c])
		if !ok || got != want {
			return id, refusef("the claim %q does not have the value this network requires", c)
		}
	}
	groups, err := stringList(claims[l.cfg.GroupsClaim])
	if err != nil {
		return id, refusef("the %q claim is malformed: %v", l.cfg.GroupsClaim, err)
	}
	id.Groups = groups
	id.Name = displayName(claims["name"])
	if amr, err := stringList(claims["amr"]); err == nil {
		id.AMR = amr
	}
	id.ACR, _ = claims["acr"].(string)
	for _, m := range id.AMR {
		if slices.Contains(l.cfg.MFAMethods, m) {
			id.MFA = true
		}
	}
	if id.ACR != "" && slices.Contains(l.cfg.MFAACRs, id.ACR) {
		id.MFA = true
	}
	return id, nil
}

// hasString reports whether claims[name] is a non-empty string.
func hasString(claims map[string]any, name string) bool {
	s, _ := claims[name].(string)
	return s != ""
}

// asBool reads a boolean claim; some providers send "true"/"false".
func asBool(v any) (value, known bool) {
	switch b := v.(type) {
	case bool:
		return b, true
	case string:
		parsed, err := strconv.ParseBool(b)
		return parsed, err == nil
	}
	return false, false
}

// claimString reads a claim compared against a required value: a string,
// or a boolean in its "true"/"false" form.
func claimString(v any) (string, bool) {
	switch s := v.(type) {
	case string:
		return s, true
	case bool:
		return strconv.FormatBool(s), true
	}
	return "", false
}

// Bounds on list claims (groups, amr): an IdP that sends more is
// misconfigured (Entra ID, for one, switches to an overage claim past 200
// groups), and the values end up in every netmap of the user's nodes.
const (
	maxListValues = 1000
	maxValueLen   = 256
)

// stringList reads a claim that is absent, one string or a list of
// strings, returning its distinct non-empty values, sorted.
func stringList(v any) ([]string, error) {
	var out []string
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		out = []string{x}
	case []any:
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, errors.New("a value is not a string")
			}
			out = append(out, s)
		}
	default:
		return nil, errors.New("not a string or a list of strings")
	}
	if len(out) > maxListValues {
		return nil, fmt.Errorf("%d values, more than the %d accepted", len(out), maxListValues)
	}
	for _, s := range out {
		if len(s) > maxValueLen {
			return nil, fmt.Errorf("a value is %d bytes long, more than the %d accepted", len(s), maxValueLen)
		}
	}
	out = slices.DeleteFunc(out, func(s string) bool { return strings.TrimSpace(s) == "" })
	slices.Sort(out)
	return slices.Compact(out), nil
}

// maxDisplayName bounds the display name kept from the "name" claim.
const maxDisplayName = 128

// displayName reads the "name" claim: a string of printable text, spaces
// collapsed, at most maxDisplayName bytes (cut on a rune boundary); ""
// when absent or not text.
func displayName(v any) string {
	s, _ := v.(string)
	s = strings.Join(strings.Fields(s), " ")
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return ""
	}
	for len(s) > maxDisplayName {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return s
}
