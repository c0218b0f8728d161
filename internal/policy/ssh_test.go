package policy

import (
	"strings"
	"testing"
)

const sshDefs = `"groups": {"group:eng": ["ann@example.com", "bob@example.com"], "group:ops": ["cy@example.com"]},
"tagOwners": {"tag:prod": [], "tag:ci": [], "tag:dev": []},
"hosts": {"bastion": "100.64.0.9"},
"acls": []`

// TestSSHRulesAndTests loads Tailscale-style ssh sections and runs their
// sshTests; each case must load.
func TestSSHRulesAndTests(t *testing.T) {
	tests := []struct {
		name  string
		ssh   string
		tests string
	}{
		{"check root, accept the rest",
			`{"action": "check", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"], "checkPeriod": "1h"},
			 {"action": "accept", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["autogroup:nonroot"]}`,
			`{"src": "group:eng", "dst": ["tag:prod"], "accept": ["ubuntu", "root"], "check": ["root"]},
			 {"src": "group:ops", "dst": ["tag:prod"], "deny": ["root", "ubuntu"]},
			 {"src": "tag:ci", "dst": ["tag:prod"], "deny": ["root"]}`},
		{"own devices",
			`{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["autogroup:nonroot", "root"]}`,
			`{"src": "ann@example.com", "dst": ["autogroup:self", "ann@example.com"], "accept": ["root", "ann"]},
			 {"src": "ann@example.com", "dst": ["bob@example.com"], "deny": ["root", "ann"]},
			 {"src": "group:eng", "dst": ["autogroup:self"], "accept": ["x"]}`},
		{"a user to their own devices",
			`{"action": "accept", "src": ["ann@example.com"], "dst": ["ann@example.com"], "users": ["ann"]}`,
			`{"src": "ann@example.com", "dst": ["ann@example.com"], "accept": ["ann"], "deny": ["root", "bob"]},
			 {"src": "bob@example.com", "dst": ["ann@example.com"], "deny": ["ann"]}`},
		{"tags to tags, hosts",
			`{"action": "accept", "src": ["tag:ci", "autogroup:tagged"], "dst": ["tag:prod", "autogroup:tagged", "bastion"], "users": ["deploy"], "acceptEnv": ["GIT_*", "LC_?"]}`,
			`{"src": "tag:ci", "dst": ["tag:prod", "tag:dev", "bastion"], "accept": ["deploy"], "deny": ["root"]},
			 {"src": "ann@example.com", "dst": ["tag:prod"], "deny": ["deploy"]}`},
		{"localpart",
			`{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:dev"], "users": ["localpart:*@example.com"]}`,
			`{"src": "ann@example.com", "dst": ["tag:dev"], "accept": ["ann"], "deny": ["bob", "root"]}`},
		{"check always, member devices",
			`{"action": "check", "src": ["autogroup:admin", "group:ops"], "dst": ["autogroup:member"], "users": ["root"], "checkPeriod": "always"}`,
			`{"src": "cy@example.com", "dst": ["ann@example.com"], "check": ["root"], "deny": ["ubuntu"]}`},
		{"recorder accepted",
			`{"action": "accept", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"], "recorder": ["tag:ci"], "enforceRecorder": true}`,
			`{"src": "group:eng", "dst": ["tag:prod"], "accept": ["root"]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustParse(t, `{`+sshDefs+`, "ssh": [`+tc.ssh+`], "sshTests": [`+tc.tests+`]}`)
			if p.SSHRuleCount() == 0 || p.SSHTestCount() == 0 {
				t.Errorf("SSHRuleCount %d, SSHTestCount %d", p.SSHRuleCount(), p.SSHTestCount())
			}
			found := false
			for _, w := range p.Warnings() {
				found = found || strings.Contains(w.Message, "NOT enforced")
			}
			if !found {
				t.Errorf("no warning that ssh rules are not enforced: %v", p.Warnings())
			}
		})
	}
}

func TestSSHWarnings(t *testing.T) {
	runWarnCases(t, []warnCase{
		{"not enforced", `{` + sshDefs + `, "ssh": ‸[{"action": "accept", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"]}]}`,
			[]string{"ssh: 1 rule(s) accepted and tested, but NOT enforced"}},
		{"recorder", `{` + sshDefs + `, "ssh": ‸[{"action": "accept", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"], "recorder": ‸["tag:ci"]}]}`,
			[]string{"ssh: 1 rule(s) accepted and tested, but NOT enforced", "ssh recorder: accepted, has no effect in Warren"}},
		{"empty section", `{"acls": [], "ssh": [], "sshTests": []}`, nil},
	})
}

func TestSSHErrors(t *testing.T) {
	rule := func(fields string) string { return `{` + sshDefs + `, "ssh": [` + fields + `]}` }
	runDiagCases(t, []diagCase{
		{"missing fields", rule(`‸‸‸‸{}`), []string{`ssh rule #1 has no action`, `ssh rule #1 has no src`, `ssh rule #1 has no dst`, `ssh rule #1 has no users`}},
		{"bad action", rule(`{"action": ‸"allow", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"]}`),
			[]string{`invalid SSH action "allow" (hint: SSH actions are "accept" and "check")`}},
		{"star source and destination", rule(`{"action": "accept", "src": [‸"*"], "dst": [‸"*"], "users": ["root"]}`),
			[]string{`"*" cannot be an SSH source`, `"*" cannot be an SSH destination (hint: use autogroup:member for user-owned devices`}},
		{"address source", rule(`{"action": "accept", "src": [‸"10.0.0.1", ‸"bastion"], "dst": ["tag:prod"], "users": ["root"]}`),
			[]string{`10.0.0.1: an address cannot be an SSH source`, `bastion: an address cannot be an SSH source`}},
		{"self source", rule(`{"action": "accept", "src": [‸"autogroup:self"], "dst": ["tag:prod"], "users": ["root"]}`),
			[]string{`autogroup:self cannot be an SSH source`}},
		{"group and address destinations", rule(`{"action": "accept", "src": ["group:eng"], "dst": [‸"group:eng", ‸"10.0.0.1", ‸"autogroup:admin", ‸"autogroup:internet"], "users": ["root"]}`),
			[]string{`a group cannot be an SSH destination`, `10.0.0.1: a bare address cannot be an SSH destination`,
				`autogroup:admin cannot be an SSH destination`, `autogroup:internet cannot be an SSH destination`}},
		{"unknown tag and group", rule(`{"action": "accept", "src": [‸"group:egn"], "dst": [‸"tag:prd"], "users": ["root"]}`),
			[]string{`unknown group "group:egn" (hint: did you mean "group:eng"?`, `tag "tag:prd" has no tagOwners entry (hint: did you mean "tag:prod"?)`}},
		{"tags to user devices", rule(`{"action": "accept", "src": ["tag:ci"], "dst": [‸"autogroup:self", ‸"autogroup:member", ‸"ann@example.com"], "users": ["root"]}`),
			[]string{`tagged sources cannot SSH to user-owned devices (autogroup:self)`, `tagged sources cannot SSH to user-owned devices (autogroup:member)`,
				`tagged sources cannot SSH to ann@example.com's devices`}},
		{"autogroup:tagged to self", rule(`{"action": "accept", "src": ["group:eng", "autogroup:tagged"], "dst": [‸"autogroup:self"], "users": ["root"]}`),
			[]string{`tagged sources cannot SSH to user-owned devices (autogroup:self)`}},
		{"user destination needs that user alone", rule(`{"action": "accept", "src": ["group:eng"], "dst": [‸"ann@example.com"], "users": ["root"]},
			{"action": "accept", "src": ["ann@example.com", "bob@example.com"], "dst": [‸"ann@example.com"], "users": ["root"]},
			{"action": "accept", "src": ["bob@example.com"], "dst": [‸"ann@example.com"], "users": ["root"]}`),
			[]string{`SSH destination ann@example.com requires src to be exactly that user (hint: use autogroup:self`,
				`SSH destination ann@example.com requires src to be exactly that user`, `SSH destination ann@example.com requires src to be exactly that user`}},
		{"bad users", rule(`{"action": "accept", "src": ["group:eng"], "dst": ["tag:prod"], "users": [‸"", ‸"autogroup:root", ‸"localpart:ann", ‸"a b", ‸"a:b"]}`),
			[]string{`empty SSH user`, `unknown SSH user autogroup "autogroup:root" (hint: the only SSH user autogroup is autogroup:nonroot)`,
				`invalid SSH user "localpart:ann" (hint: write "localpart:*@example.com")`, `invalid SSH user "a b"`, `invalid SSH user "a:b"`}},
		{"no users", rule(`{"action": "accept", "src": ["group:eng"], "dst": ["tag:prod"], "users": ‸[]}`), []string{`ssh rule #1 has no users`}},
		{"checkPeriod on accept", rule(`{"action": "accept", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"], "checkPeriod": ‸"1h"}`),
			[]string{`checkPeriod is only valid with action "check"`}},
		{"checkPeriod out of range", rule(`{"action": "check", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"], "checkPeriod": ‸"30s"},
			{"action": "check", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"], "checkPeriod": ‸"8d"},
			{"action": "check", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"], "checkPeriod": ‸"soon"}`),
			[]string{`checkPeriod 30s is out of range (hint: write a duration from 1m to 168h`, `checkPeriod 8d is out of range`, `invalid checkPeriod "soon"`}},
		{"bad acceptEnv", rule(`{"action": "accept", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"], "acceptEnv": [‸"A-B", ‸""]}`),
			[]string{`invalid acceptEnv entry "A-B"`, `invalid acceptEnv entry ""`}},
		{"recorder must be a tag", rule(`{"action": "accept", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"], "recorder": [‸"group:eng"]}`),
			[]string{`invalid recorder "group:eng"`}},
		{"unknown field", rule(`{"action": "accept", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"], ‸"user": []}`),
			[]string{`unknown field "user" in ssh rule #1 (hint: did you mean "users"?)`}},
	})
}

func TestSSHTestErrors(t *testing.T) {
	pol := func(ssh, tests string) string {
		return `{` + sshDefs + `, "ssh": [` + ssh + `],` + "\n" + `"sshTests": [` + tests + `]}`
	}
	checkRoot := `{"action": "check", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"]}`
	acceptAll := `{"action": "accept", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["autogroup:nonroot"]}`
	runDiagCases(t, []diagCase{
		{"failing accept", pol(acceptAll, `{"src": "ann@example.com", "dst": ["tag:prod"], "accept": [‸"root"]}`),
			[]string{`ssh test failed: ann@example.com logging in to tag:prod as "root" is denied, but the test expects accept`}},
		{"failing deny", pol(acceptAll, `{"src": "bob@example.com", "dst": ["tag:prod"], "deny": ["root", ‸"ubuntu"]}`),
			[]string{`ssh test failed: bob@example.com logging in to tag:prod as "ubuntu" is accepted (without check), but the test expects deny`}},
		{"failing check", pol(acceptAll+","+checkRoot, `{"src": "ann@example.com", "dst": ["tag:prod"], "check": [‸"ubuntu", "root"]}`),
			[]string{`ssh test failed: ann@example.com logging in to tag:prod as "ubuntu" is accepted (without check), but the test expects check`}},
		{"a new group member counts", pol(`{"action": "accept", "src": ["ann@example.com", "bob@example.com"], "dst": ["tag:prod"], "users": ["root"]}`,
			`{"src": "group:eng", "dst": ["tag:prod"], "accept": [‸"root"]}`),
			[]string{`ssh test failed: a member of group:eng known only to the identity provider logging in to tag:prod as "root" is denied`}},
		{"self for a tag", pol(acceptAll, `‸{"src": "tag:ci", "dst": ["autogroup:self"], "accept": ["root"]}`),
			[]string{`sshTests: tag:ci has no devices of its own for autogroup:self`}},
		{"malformed", pol(acceptAll, `‸‸{"accept": [‸"autogroup:nonroot"]}, ‸{"src": "ann@example.com", "dst": [‸"group:eng", ‸"*"]}`),
			[]string{`sshTest #1 has no src`, `sshTest #1 has no dst`, `invalid user "autogroup:nonroot" in sshTests accept`,
				`sshTest #2 checks nothing`, `group:eng cannot be an sshTests destination`, `* cannot be an sshTests destination`}},
		{"unknown field", pol(acceptAll, `‸{"src": "ann@example.com", "dst": ["tag:prod"], ‸"allow": ["root"]}`),
			[]string{`sshTest #1 checks nothing`, `unknown field "allow" in sshTest #1`}},
	})
}
