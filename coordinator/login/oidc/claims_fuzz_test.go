package oidc

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzCheckClaims feeds arbitrary JSON claim sets (what a provider's ID
// token and userinfo carry once verified) through the claim rules: they
// must never panic, and an accepted login must satisfy every rule.
func FuzzCheckClaims(f *testing.F) {
	f.Add([]byte(`{"email":"ann@example.com","email_verified":true,"groups":["eng","ops"],"amr":["pwd","mfa"],"hd":"example.com"}`))
	f.Add([]byte(`{"email":"ann@example.com","groups":"eng","acr":"phr"}`))
	f.Add([]byte(`{"email":"x@","groups":[1,2]}`))
	f.Add([]byte(`{"email":"ANN@Example.com ","email_verified":"true","hd":true}`))
	f.Add([]byte(`{"email":7,"groups":{"a":1},"amr":"otp"}`))
	l := &Login{cfg: Config{
		AllowedDomains: []string{"example.com"},
		RequiredClaims: map[string]string{"hd": "example.com"},
		GroupsClaim:    DefaultGroupsClaim,
		MFAMethods:     DefaultMFAMethods,
		MFAACRs:        []string{"phr"},
	}}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var claims map[string]any
		if json.Unmarshal(raw, &claims) != nil {
			return
		}
		id, err := l.checkClaims("subject", claims)
		if err != nil {
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("refusal %v does not wrap ErrRefused", err)
			}
			return
		}
		if !strings.HasSuffix(id.Email, "@example.com") {
			t.Fatalf("accepted email %q outside the allowed domain", id.Email)
		}
		if hd, _ := claimString(claims["hd"]); hd != "example.com" {
			t.Fatalf("accepted without the required claim: %v", claims["hd"])
		}
		if len(id.Groups) > maxListValues {
			t.Fatalf("%d groups accepted", len(id.Groups))
		}
		for _, g := range id.Groups {
			if strings.TrimSpace(g) == "" || len(g) > maxValueLen {
				t.Fatalf("group %q accepted", g)
			}
		}
	})
}
