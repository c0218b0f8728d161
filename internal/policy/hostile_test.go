package policy

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestHostileInputs parses pathological files and checks each finishes
// quickly: no quadratic blowups, no deep recursion.
func TestHostileInputs(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("a timing test: run without -short and without -race")
	}
	rep := func(s string, n int, sep string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = strings.ReplaceAll(s, "N", fmt.Sprint(i))
		}
		return strings.Join(parts, sep)
	}
	cases := map[string]string{
		"deep nesting":         strings.Repeat("[", 1<<20),
		"deep in string":       `{"acls": "` + strings.Repeat("[", 1<<20) + `"}`,
		"open comment":         "{/*" + strings.Repeat("[", 1<<20),
		"huge port list":       `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:` + rep("N", 400000, ",") + `"]}]}`,
		"many port ranges":     `{"acls": [` + rep(`{"action": "accept", "src": ["*"], "dst": [`+rep(`"*:`+rep("N0-N1", 1000, ",")+`"`, 60, ",")+`]}`, 2, ",") + `]}`,
		"huge group":           `{"groups": {"group:g": [` + rep(`"uN@x.com"`, 200000, ",") + `]}}`,
		"same member":          `{"groups": {"group:g": [` + rep(`"u@x.com"`, 300000, ",") + `]}}`,
		"too many rules":       `{"acls": [` + rep(`{"action": "accept", "src": ["*"], "dst": ["*:*"]}`, maxRules+1, ",") + `]}`,
		"many identical rules": `{"tagOwners": {"tag:a": []}, "acls": [` + rep(`{"action": "accept", "src": ["*"], "dst": ["tag:a:N"]}`, 15000, ",") + `]}`,
		"many errors with suggestions": `{"groups": {` + rep(`"group:gN": []`, 5000, ",") + `}, "acls": [` +
			rep(`{"action": "accept", "src": ["group:xN"], "dst": ["*:*"]}`, 5000, ",") + `]}`,
		"many tests": `{"tagOwners": {"tag:a": []}, "acls": [` + rep(`{"action": "accept", "src": ["uN@x.com"], "dst": ["tag:a:N"]}`, 5000, ",") +
			`], "tests": [` + rep(`{"src": "zN@x.com", "accept": ["tag:a:1", "tag:a:2", "tag:a:3"]}`, 5000, ",") + `]}`,
		"many ssh tests": `{"tagOwners": {"tag:a": []}, "ssh": [` + rep(`{"action": "accept", "src": [`+rep(`"uN@x.com"`, 50, ",")+`], "dst": ["tag:a"], "users": ["uN", "root"]}`, 1000, ",") +
			`], "sshTests": [` + rep(`{"src": "zN@x.com", "dst": ["tag:a", "tag:a", "tag:a"], "deny": ["root", "a", "b", "c"]}`, 5000, ",") + `]}`,
		"many nodeAttrs":          `{"tagOwners": {"tag:a": []}, "nodeAttrs": [` + rep(`{"target": ["tag:a", "uN@x.com"], "attr": ["aN", "b"], "app": {"x.com/cN": [{"k": N}]}}`, 20000, ",") + `]}`,
		"many posture conditions": `{"postures": {"posture:p": [` + rep(`"custom:aN IN ['x', 'y', 'z']"`, 100000, ",") + `]}}`,
	}
	limit := 3 * time.Second
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			_, err := Parse([]byte(src))
			if d := time.Since(start); d > limit {
				t.Errorf("Parse of %d bytes took %v (err %.200v)", len(src), d, err)
			}
		})
	}
}
