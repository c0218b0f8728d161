package oidc

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestDisplayName: the "name" claim is kept as printable text with its
// spaces collapsed and a bounded length; anything else gives no name.
func TestDisplayName(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes
	for _, tc := range []struct {
		in   any
		want string
	}{
		{"Ann Lee", "Ann Lee"},
		{"  Ann \t Lee \n", "Ann Lee"},
		{nil, ""},
		{42, ""},
		{[]any{"Ann"}, ""},
		{"Ann\x00Lee", ""},
		{"Ann\u202eeeL", ""}, // a bidi override is not printable
		{"\xff\xfe", ""},
		{long, strings.Repeat("é", 64)},
	} {
		got := displayName(tc.in)
		if got != tc.want || !utf8.ValidString(got) || len(got) > maxDisplayName {
			t.Errorf("displayName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
