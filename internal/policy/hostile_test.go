package policy

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// TestHostileInputs parses pathological files at two sizes, n and 4n, and
// checks the work grows no faster than the input: no quadratic blowups, no
// deep recursion. Work is the CPU time of the parsing thread (see
// cpuPerOp), so a busy machine does not fail the test; linear growth gives
// a ratio near 4, quadratic 16, and the bound is 10. The two analyses that
// are quadratic by nature (shadowed rules, the tests section) run under
// small caps here, so the sizes stay small and the test shows that past
// the cap the work stops growing (with the shadow cap lifted, the two
// shadowed-rule cases measure a ratio of about 12); their production caps
// are constants.
func TestHostileInputs(t *testing.T) {
	rep := func(s string, n int, sep string) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteString(sep)
			}
			b.WriteString(strings.ReplaceAll(s, "N", strconv.Itoa(i)))
		}
		return b.String()
	}
	production := limits{shadowWork: maxShadowWork, testChecks: maxTestChecks}
	small := limits{shadowWork: 5_000, testChecks: 1_000}
	cases := []struct {
		name string
		n    int
		src  func(n int) string
		lim  limits
		want string // in the errors or warnings at both sizes: the cap engaged
	}{
		{"deep nesting", 1 << 15, func(n int) string { return strings.Repeat("[", n) }, production, "nesting deeper"},
		{"deep in string", 1 << 15, func(n int) string { return `{"acls": "` + strings.Repeat("[", n) + `"}` }, production, ""},
		{"open comment", 1 << 15, func(n int) string { return "{/*" + strings.Repeat("[", n) }, production, ""},
		{"huge port list", 4000, func(n int) string {
			return `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:` + rep("N", n, ",") + `"]}]}`
		}, production, ""},
		{"many port ranges", 2, func(n int) string {
			return `{"acls": [` + rep(`{"action": "accept", "src": ["*"], "dst": [`+rep(`"*:`+rep("N0-N1", 1000, ",")+`"`, n, ",")+`]}`, 2, ",") + `]}`
		}, small, "stopped early"},
		{"huge group", 4000, func(n int) string {
			return `{"groups": {"group:g": [` + rep(`"uN@x.com"`, n, ",") + `]}}`
		}, production, ""},
		{"same member", 4000, func(n int) string {
			return `{"groups": {"group:g": [` + rep(`"u@x.com"`, n, ",") + `]}}`
		}, production, ""},
		{"too many rules", maxRules + 1, func(n int) string {
			return `{"acls": [` + rep(`{}`, n, ",") + `]}`
		}, production, "the limit is"},
		{"many identical rules", 400, func(n int) string {
			return `{"tagOwners": {"tag:a": []}, "acls": [` + rep(`{"action": "accept", "src": ["*"], "dst": ["tag:a:N"]}`, n, ",") + `]}`
		}, small, "stopped early"},
		{"many errors with suggestions", 500, func(n int) string {
			return `{"groups": {` + rep(`"group:gN": []`, n, ",") + `}, "acls": [` +
				rep(`{"action": "accept", "src": ["group:xN"], "dst": ["*:*"]}`, n, ",") + `]}`
		}, production, "unknown group"},
		{"many tests", 400, func(n int) string {
			return `{"tagOwners": {"tag:a": []}, "acls": [` + rep(`{"action": "accept", "src": ["uN@x.com"], "dst": ["tag:a:N"]}`, n, ",") +
				`], "tests": [` + rep(`{"src": "zN@x.com", "accept": ["tag:a:1", "tag:a:2", "tag:a:3"]}`, n, ",") + `]}`
		}, small, "too large to evaluate"},
		{"many posture conditions", 4000, func(n int) string {
			return `{"postures": {"posture:p": [` + rep(`"custom:aN IN ['x', 'y', 'z']"`, n, ",") + `]}}`
		}, production, ""},
		{"many ssh tests", 200, func(n int) string {
			return `{"tagOwners": {"tag:a": []}, "ssh": [` + rep(`{"action": "accept", "src": [`+rep(`"uN@x.com"`, 20, ",")+`], "dst": ["tag:a"], "users": ["uN", "root"]}`, n, ",") +
				`], "sshTests": [` + rep(`{"src": "zN@x.com", "dst": ["tag:a", "tag:a", "tag:a"], "deny": ["root", "a", "b", "c"]}`, n, ",") + `]}`
		}, small, ""},
		{"many nodeAttrs", 2000, func(n int) string {
			return `{"tagOwners": {"tag:a": []}, "nodeAttrs": [` + rep(`{"target": ["tag:a", "uN@x.com"], "attr": ["aN", "b"], "app": {"x.com/cN": [{"k": N}]}}`, n, ",") + `]}`
		}, production, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.n
			if raceEnabled && tc.n > maxRules {
				n = tc.n // past the rule cap at both sizes
			} else if raceEnabled {
				n = max(tc.n/8, 2) // the race detector slows parsing about tenfold
			}
			small, large := []byte(tc.src(n)), []byte(tc.src(4*n))
			for _, src := range [][]byte{small, large} {
				if out := outcome(parse(src, tc.lim)); !strings.Contains(out, tc.want) {
					t.Fatalf("%d bytes: want %q in the outcome, got %.300s", len(src), tc.want, out)
				}
			}
			atN := cpuPerOp(t, func() { parse(small, tc.lim) })
			at4N := cpuPerOp(t, func() { parse(large, tc.lim) })
			ratio := float64(at4N) / float64(atN)
			t.Logf("%d bytes: %v, %d bytes: %v, ratio %.1f", len(small), atN, len(large), at4N, ratio)
			if ratio > 10 {
				t.Errorf("4x the input (%d bytes, not %d) costs %.1fx the work (%v, not %v); linear is about 4", len(large), len(small), ratio, at4N, atN)
			}
		})
	}
}

// outcome is every error and warning of a parse, as text.
func outcome(p *Policy, err error) string {
	var b strings.Builder
	var es Errors
	if errors.As(err, &es) {
		b.WriteString(es.Error())
	} else if err != nil {
		b.WriteString(err.Error())
	}
	if p != nil {
		for _, w := range p.Warnings() {
			b.WriteString("\n" + w.Error())
		}
	}
	return b.String()
}
