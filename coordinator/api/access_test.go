package api

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/warrenmesh/warren/coordinator/access"
)

func TestDecodeDecision(t *testing.T) {
	for _, tc := range []struct {
		body   string
		d      time.Duration
		reason string
		err    string
	}{
		{``, 0, "", ""},
		{`{}`, 0, "", ""},
		{`{"for": "1h30m"}`, 90 * time.Minute, "", ""},
		{`{"reason": "  use the replica "}`, 0, "use the replica", ""},
		{`{"for": "-1h"}`, 0, "", "want a duration"},
		{`{"for": "0s"}`, 0, "", "want a duration"},
		{`{"for": "9000h"}`, 0, "", "want a duration"},
		{`{"for": "soon"}`, 0, "", "want a duration"},
		{`{"reason": "` + strings.Repeat("x", access.MaxReason+1) + `"}`, 0, "", "reason longer"},
		{`{"until": "1h"}`, 0, "", "unknown field"},
		{`{} {}`, 0, "", "more than one"},
		{`[`, 0, "", "bad request body"},
		{strings.Repeat(" ", maxDecisionBody+1), 0, "", "larger than"},
	} {
		d, reason, err := decodeDecision([]byte(tc.body))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, errBadBody) {
				t.Errorf("%.40q: %v, want a bad body saying %q", tc.body, err, tc.err)
			}
			continue
		}
		if err != nil || d != tc.d || reason != tc.reason {
			t.Errorf("%q: %v %q %v, want %v %q", tc.body, d, reason, err, tc.d, tc.reason)
		}
	}
}

// FuzzDecodeDecision: a decision's body from the network never panics
// the decoder, and what it accepts is within bounds.
func FuzzDecodeDecision(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"for": "2h"}`, `{"reason": "INC-4211"}`, `{"for": "1h", "reason": "x"}`, `{"for": 5}`, `null`, `{"reason": "\u00e9\ud800"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		d, reason, err := decodeDecision(body)
		if err != nil {
			if !errors.Is(err, errBadBody) {
				t.Fatalf("error %v is not a bad body", err)
			}
			return
		}
		if d < 0 || d > 366*24*time.Hour || len(reason) > access.MaxReason || !utf8.ValidString(reason) || reason != strings.TrimSpace(reason) {
			t.Fatalf("accepted %q: %v %q", body, d, reason)
		}
	})
}
