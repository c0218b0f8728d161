package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sshPolicy carries Tailscale SSH rules, which Warren stores and tests
// but does not enforce.
const sshPolicy = `{
	"groups": {"group:eng": ["ann@example.com"]},
	"tagOwners": {"tag:db": ["autogroup:admin"], "tag:ci": ["autogroup:admin"]},
	"acls": [{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5432"]}],
	"ssh": [{"action": "check", "src": ["group:eng"], "dst": ["tag:db"], "users": ["root"], "checkPeriod": "1h"}],
	"sshTests": [{"src": "ann@example.com", "dst": ["tag:db"], "check": ["root"], "deny": ["ubuntu"]}],
	"nodeAttrs": [{"target": ["tag:db"], "attr": ["funnel"]}],
}
`

// TestPolicySSHSummary: policy check counts ssh rules and tests without
// calling them unenforced, and names the nodeAttrs without effect.
func TestPolicySSHSummary(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ssh.hujson")
	must(t, os.WriteFile(file, []byte(sshPolicy), 0o600))
	out, err := runCLI(t, "policy", "check", file)
	if err != nil || strings.Contains(out, "NOT enforced") ||
		!strings.Contains(out, "delivered to the targeted nodes, has no effect in Warren yet: funnel") ||
		!strings.Contains(out, "ok, 1 rule(s), 0 test(s) passed, 1 ssh rule(s), 1 ssh test(s) passed, 1 warning(s)") {
		t.Fatalf("check: %v\n%s", err, out)
	}
	var checks []fileCheck
	out, err = runCLI(t, "policy", "check", "--json", file)
	if err != nil || json.Unmarshal([]byte(out), &checks) != nil || len(checks) != 1 || checks[0].SSHRules != 1 || checks[0].SSHTests != 1 {
		t.Fatalf("check --json: %v\n%s", err, out)
	}
	// A failing sshTest rejects the file like a failing test.
	bad := filepath.Join(t.TempDir(), "bad.hujson")
	must(t, os.WriteFile(bad, []byte(strings.Replace(sshPolicy, `"deny": ["ubuntu"]`, `"deny": ["root"]`, 1)), 0o600))
	out, err = runCLI(t, "policy", "check", bad)
	if err == nil || !strings.Contains(out, bad+":6:") || !strings.Contains(out, "ssh test failed") {
		t.Fatalf("check of a failing sshTest: %v\n%s", err, out)
	}

	dir := startCoordinator(t)
	sd := "--state-dir=" + dir
	must(t, os.WriteFile(filepath.Join(dir, "policy.hujson"), []byte(sshPolicy), 0o600))
	if out, err := runCLI(t, "policy", "reload", sd); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	out, err = runCLI(t, "policy", "show", sd)
	if err != nil || !strings.Contains(out, "warning: ") || strings.Contains(out, "NOT enforced") {
		t.Fatalf("show: %v\n%s", err, out)
	}
}
