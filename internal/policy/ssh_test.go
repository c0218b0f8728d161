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
		{"tags to tags",
			`{"action": "accept", "src": ["tag:ci", "autogroup:tagged"], "dst": ["tag:prod", "autogroup:tagged"], "users": ["deploy"], "acceptEnv": ["GIT_*", "LC_?", "**"]}`,
			`{"src": "tag:ci", "dst": ["tag:prod", "tag:dev"], "accept": ["deploy"], "deny": ["root"]},
			 {"src": "ann@example.com", "dst": ["tag:prod"], "deny": ["deploy"]}`},
		{"localpart",
			`{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:dev"], "users": ["localpart:*@example.com"]}`,
			`{"src": "ann@example.com", "dst": ["tag:dev"], "accept": ["ann"], "deny": ["bob", "root"]}`},
		{"check always, member devices",
			`{"action": "check", "src": ["autogroup:admin", "group:ops"], "dst": ["autogroup:member"], "users": ["root"], "checkPeriod": "always"}`,
			`{"src": "cy@example.com", "dst": ["ann@example.com"], "check": ["root"], "deny": ["ubuntu"]}`},
		{"domain source",
			`{"action": "accept", "src": ["user:*@example.com"], "dst": ["tag:dev"], "users": ["root"]}`,
			`{"src": "ann@example.com", "dst": ["tag:dev"], "accept": ["root"]},
			 {"src": "dan@other.example", "dst": ["tag:dev"], "deny": ["root"]}`},
		{"what Tailscale accepts leniently",
			`{"action": " accept", "src": [" ann@example.com"], "dst": ["tag:prod "], "users": [" root", "autogroup:member", "localpart:", "group:x"], "checkPeriod": null, "acceptEnv": null},
			 {"action": "check", "src": ["group:eng"], "dst": ["tag:dev"], "users": ["root"], "checkPeriod": "0s"},
			 {"action": "check", "src": ["group:eng"], "dst": ["tag:dev"], "users": ["ubuntu"], "checkPeriod": "30s"},
			 {"action": "check", "src": ["group:eng"], "dst": ["tag:dev"], "users": ["ubuntu"], "checkPeriod": "168h"},
			 {"action": "accept", "src": [], "users": ["root"]}`,
			`{"src": "ann@example.com", "dst": ["tag:prod"], "accept": ["root"], "deny": ["autogroup:member"]}`},
		{"addresses in tests are not checked",
			`{"action": "accept", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"]}`,
			`{"src": "100.64.0.17", "dst": ["tag:prod"], "accept": ["root"]},
			 {"src": "ann@example.com", "dst": ["bastion", "100.64.0.16", "tag:prod"], "accept": ["root"]}`},
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
			for _, w := range p.Warnings() {
				if strings.Contains(w.Message, "NOT enforced") || strings.Contains(w.Message, "no effect") {
					t.Errorf("warning that ssh rules are not enforced: %v", w)
				}
			}
		})
	}
}

func TestSSHWarnings(t *testing.T) {
	rule := `{"action": "accept", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"]}`
	runWarnCases(t, []warnCase{
		{"enforced: no warning", `{` + sshDefs + `, "ssh": [` + rule + `]}`, nil},
		{"recorder: no warning", `{` + sshDefs + `, "ssh": [{"action": "accept", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"], "recorder": ["tag:ci"], "enforceRecorder": false, "portForwarding": true}]}`, nil},
		{"matches nothing", `{` + sshDefs + `, "ssh": [‸{"action": "accept", "users": ["root"]}, ‸{"action": "accept", "src": ["group:eng"], "dst": [], "users": ["root"]}]}`,
			[]string{"ssh rule #1 has no src or no dst: it matches nothing",
				"ssh rule #2 has no src or no dst: it matches nothing"}},
		{"spaces, once per rule", `{` + sshDefs + `, "ssh": [{"action": ‸" accept", "src": ["group:eng "], "dst": ["tag:prod"], "users": ["root "]}]}`,
			[]string{`spaces around "accept" are ignored`}},
		{"users that are no local user", `{` + sshDefs + `, "ssh": [{"action": "accept", "src": ["group:eng"], "dst": ["tag:prod"], "users": [‸"autogroup:self", ‸"tag:x", ‸"localpart:ann"]}]}`,
			[]string{`ssh user "autogroup:self" is not a local user name: it matches no login`,
				`ssh user "tag:x" is not a local user name`, `ssh user "localpart:ann" is not a localpart:*@DOMAIN pattern`}},
		{"address tests", `{` + sshDefs + `, "ssh": [` + rule + `], "sshTests": [{"src": ‸"10.0.0.1", "dst": ["tag:prod"], "accept": ["root"]}, {"src": "ann@example.com", "dst": [‸"bastion"], "accept": ["root"]}]}`,
			[]string{"sshTest #1 is not checked: SSH sources are identities",
				"sshTest #2: dst bastion is not checked"}},
		{"empty section", `{"acls": [], "ssh": [], "sshTests": []}`, nil},
	})
}

func TestSSHErrors(t *testing.T) {
	rule := func(fields string) string { return `{` + sshDefs + `, "ssh": [` + fields + `]}` }
	runDiagCases(t, []diagCase{
		{"missing fields", rule(`‸‸{}, ‸‸{"action": null, "users": null}`),
			[]string{`ssh rule #1 has no action`, `ssh rule #1 has no users`, `ssh rule #2 has no action`, `ssh rule #2 has no users`}},
		{"bad action", rule(`{"action": ‸"allow", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"]},
			{"action": ‸"Accept", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"]},
			{"action": ‸"", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"]}`),
			[]string{`invalid SSH action "allow" (hint: SSH actions are "accept" and "check", in lower case)`,
				`invalid SSH action "Accept"`, `ssh rule #3 has no action`}},
		{"star source and destination", rule(`{"action": "accept", "src": [‸"*"], "dst": [‸"*"], "users": ["root"]}`),
			[]string{`"*" cannot be an SSH source`, `"*" cannot be an SSH destination (hint: use autogroup:member for user-owned devices`}},
		{"address source", rule(`{"action": "accept", "src": [‸"10.0.0.1", ‸"bastion"], "dst": ["tag:prod"], "users": ["root"]}`),
			[]string{`10.0.0.1: an address cannot be an SSH source`, `bastion: an address cannot be an SSH source`}},
		{"self source", rule(`{"action": "accept", "src": [‸"autogroup:self"], "dst": ["tag:prod"], "users": ["root"]}`),
			[]string{`autogroup:self cannot be an SSH source`}},
		{"group and address destinations", rule(`{"action": "accept", "src": ["group:eng"], "dst": [‸"group:eng", ‸"10.0.0.1", ‸"autogroup:admin", ‸"autogroup:internet"], "users": ["root"]}`),
			[]string{`a group cannot be an SSH destination`, `invalid dst "10.0.0.1": host aliases and addresses cannot be SSH destinations`,
				`autogroup:admin cannot be an SSH destination`, `autogroup:internet cannot be an SSH destination`}},
		{"host alias destination", rule(`{"action": "accept", "src": ["group:eng"], "dst": [‸"bastion"], "users": ["root"]}`),
			[]string{`invalid dst "bastion": host aliases and addresses cannot be SSH destinations`}},
		{"bad domain source", rule(`{"action": "accept", "src": [‸"user:*@", ‸"user:*@*"], "dst": ["tag:prod"], "users": ["root"]}`),
			[]string{`invalid domain in "user:*@"`, `invalid domain in "user:*@*"`}},
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
		{"bad users", rule(`{"action": "accept", "src": ["group:eng"], "dst": ["tag:prod"], "users": [‸"", ‸"*", ‸" ", ‸"localpart:*@*"]}`),
			[]string{`user "" is not valid`, `user "*" is not valid`, `user "" is not valid`, `invalid domain in "localpart:*@*"`}},
		{"no users", rule(`{"action": "accept", "src": ["group:eng"], "dst": ["tag:prod"], "users": ‸[]}`), []string{`ssh rule #1 has no users`}},
		{"checkPeriod on accept", rule(`{"action": "accept", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"], "checkPeriod": ‸"1h"}`),
			[]string{`checkPeriod is only valid with action "check"`}},
		{"checkPeriod out of range", rule(`{"action": "check", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"], "checkPeriod": ‸"168h1s"},
			{"action": "check", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"], "checkPeriod": ‸"8d"},
			{"action": "check", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"], "checkPeriod": ‸"-1m"},
			{"action": "check", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"], "checkPeriod": ‸"soon"}`),
			[]string{`checkPeriod 168h1s is above the max (168h) (hint: write a duration up to 168h`, `checkPeriod 8d is above the max (168h)`,
				`checkPeriod -1m must be a positive duration`, `invalid checkPeriod "soon"`}},
		{"empty acceptEnv value", rule(`{"action": "accept", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"], "acceptEnv": ["A*", ‸""]}`),
			[]string{`acceptEnv values cannot be empty`}},
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
		{"malformed", pol(acceptAll, `‸‸{"accept": [‸"autogroup:nonroot", ‸"*", ‸""]}, ‸{"src": "ann@example.com", "dst": [‸"group:eng", ‸"*", ‸"100.64.0.0/24", ‸"tag:prod:22", ‸"autogroup:internet"]}`),
			[]string{`sshTest #1 has no src`, `sshTest #1 has no dst`, `invalid user "autogroup:nonroot" in sshTests accept`,
				`invalid user "*" in sshTests accept`, `invalid user "" in sshTests accept`,
				`sshTest #2 checks nothing`, `group:eng cannot be an sshTests destination`, `* cannot be an sshTests destination`,
				`SSH tests dst contains disallowed element "100.64.0.0/24"`, `tag "tag:prod:22" has no tagOwners entry`, `autogroup:internet cannot be an sshTests destination`}},
		{"an IPv6 destination", pol(acceptAll, `{"src": "ann@example.com", "dst": [‸"fd7a:115c:a1e0::10"], "accept": ["ubuntu"]}`),
			[]string{`sshTest #1: dst fd7a:115c:a1e0::10: an IPv6 address cannot be an sshTests destination`}},
		{"unknown field", pol(acceptAll, `‸{"src": "ann@example.com", "dst": ["tag:prod"], ‸"allow": ["root"]}`),
			[]string{`sshTest #1 checks nothing`, `unknown field "allow" in sshTest #1`}},
	})
}
