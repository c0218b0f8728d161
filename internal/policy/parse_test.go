package policy

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestDiagnostics checks each error's exact position and message. In each
// source, ‸ marks where an error must point (it is removed before
// parsing); the errors come in file order.
func TestDiagnostics(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // message prefixes, one per ‸
	}{
		{"syntax error", "{\n  \"acls\": [\n    {\"action\": \"accept\" ‸\"src\": []},\n  ]\n}",
			[]string{`syntax error: invalid character '"' after object value`}},
		{"not an object", `‸[]`, []string{`the policy must be an object, not an array`}},
		{"unknown top-level field", "{\n  ‸\"acl\": [],\n}", []string{`unknown field "acl" in the policy (hint: did you mean "acls"?)`}},
		{"misspelt section", `{‸"grant": []}`, []string{`unknown field "grant" in the policy (hint: did you mean "grants"?)`}},
		{"duplicate field", "{\"acls\": [],\n ‸\"acls\": []}", []string{`duplicate field "acls" in the policy`}},
		{"legacy and new field together", `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"], "users": ‸["*"]}]}`,
			[]string{`acls rule #1 has both "users" and "src" (hint: "users" is the legacy name of "src"; keep one of them)`}},
		{"misspelt rule field", `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"], ‸"prot": "tcp"}]}`,
			[]string{`unknown field "prot" in acls rule #1 (hint: did you mean "proto"?)`}},
		{"deny action", `{"acls": [{"action": ‸"deny", "src": ["*"], "dst": ["*:*"]}]}`,
			[]string{`unsupported action "deny" (hint: everything no rule accepts is denied`}},
		{"missing fields", `{"acls": [‸‸{"action": "accept"}]}`,
			[]string{`acls rule #1 has no src`, `acls rule #1 has no dst`}},
		{"unknown group with suggestion", `{"groups": {"group:eng": []}, "acls": [{"action": "accept", "src": [‸"group:egn"], "dst": ["*:*"]}]}`,
			[]string{`unknown group "group:egn" (hint: did you mean "group:eng"? If it is a group of the identity provider, declare it in "groups": "group:egn": [])`}},
		{"undeclared IdP group", `{"acls": [{"action": "accept", "src": [‸"group:eng"], "dst": ["*:*"]}]}`,
			[]string{`unknown group "group:eng" (hint: declare every group a rule uses in "groups", also one the identity provider fills: "group:eng": [])`}},
		{"undeclared IdP group owning a tag", `{"tagOwners": {"tag:web": [‸"group:ops"]}}`,
			[]string{`unknown group "group:ops" (hint: declare every group a rule uses in "groups", also one the identity provider fills: "group:ops": [])`}},
		{"undeclared IdP group near a declared one", `{"groups": {"group:eng": []}, "acls": [{"action": "accept", "src": [‸"group:eng2"], "dst": ["*:*"]}]}`,
			[]string{`unknown group "group:eng2" (hint: did you mean "group:eng"? If it is a group of the identity provider, declare it in "groups": "group:eng2": [])`}},
		{"tag without owner", `{"tagOwners": {"tag:web": []}, "acls": [{"action": "accept", "src": ["*"], "dst": ["‸tag:wbe:80"]}]}`,
			[]string{`tag "tag:wbe" has no tagOwners entry (hint: did you mean "tag:web"?)`}},
		{"tag owner unknown", `{"tagOwners": {"tag:a": [‸"tag:b", ‸"grp"]}}`,
			[]string{`tag "tag:b" has no tagOwners entry`, `invalid tag owner "grp"`}},
		{"unknown host", `{"hosts": {"db": "10.0.0.1"}, "acls": [{"action": "accept", "src": [‸"dbb"], "dst": ["*:*"]}]}`,
			[]string{`unknown src "dbb" (hint: did you mean "db"?)`}},
		{"bad CIDR", `{"hosts": {"net": ‸"10.0.0.1/24"}}`,
			[]string{`host net: CIDR "10.0.0.1/24" has bits set after the prefix length (hint: write "10.0.0.0/24" for the network, or "10.0.0.1" for the one address)`}},
		{"bad IP", `{"acls": [{"action": "accept", "src": [‸"10.0.0.256"], "dst": ["*:*"]}]}`,
			[]string{`invalid IP address "10.0.0.256"`}},
		{"bad port points into the string", `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:22,‸8x"]}]}`,
			[]string{`invalid port "8x": not a number`}},
		{"bad range end", `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:80-‸9z"]}]}`,
			[]string{`invalid port "80-9z": not a number`}},
		{"reversed range", `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:‸90-80"]}]}`,
			[]string{`port range "90-80" ends before it starts (hint: did you mean 80-90?)`}},
		{"port too big", `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:‸65536"]}]}`,
			[]string{`invalid port "65536": out of range 0-65535`}},
		{"no ports", `{"acls": [{"action": "accept", "src": ["*"], "dst": ["‸autogroup:member"]}]}`,
			[]string{`destination "autogroup:member" has no ports (hint: add the ports, e.g. "autogroup:member:*"`}},
		{"IPv6 without ports", `{"acls": [{"action": "accept", "src": ["*"], "dst": ["‸fd7a::1"]}]}`,
			[]string{`destination "fd7a::1" has no ports (hint: write "[fd7a::1]:22"`}},
		{"bad proto", `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"], "proto": ‸"icmpp"}]}`,
			[]string{`unknown protocol "icmpp" (hint: did you mean "icmp"?)`}},
		{"proto number out of range", `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"], "proto": ‸"256"}]}`,
			[]string{`unknown protocol "256"`}},
		{"ports with icmp", `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:‸22"], "proto": "icmp"}]}`,
			[]string{`protocol icmp has no ports (hint: write the destination as "*:*")`}},
		{"self as source", `{"acls": [{"action": "accept", "src": [‸"autogroup:self"], "dst": ["*:*"]}]}`,
			[]string{`autogroup:self cannot be a source`}},
		{"unknown autogroup", `{"acls": [{"action": "accept", "src": [‸"autogroup:members"], "dst": ["*:*"]}]}`,
			[]string{`unknown autogroup "autogroup:members" (hint: did you mean "autogroup:member"?)`}},
		{"unknown selector kind", `{"acls": [{"action": "accept", "src": [‸"posture:x"], "dst": ["*:*"]}]}`,
			[]string{`posture:x is a posture, not a src`}},
		{"nested group", "{\"groups\": {\n  \"group:a\": [‸\"group:b\"],\n}}",
			[]string{`nested groups are not supported (group:b in group:a)`}},
		{"bad group name", `{"groups": {‸"grp:a": []}}`,
			[]string{`group name "grp:a" must start with "group:" (hint: did you mean "group:a"?)`}},
		{"unknown posture", `{"postures": {"posture:mac": ["node:os == 'macos'"]}, "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"], "srcPosture": [‸"posture:macc"]}]}`,
			[]string{`unknown posture "posture:macc" in srcPosture (hint: did you mean "posture:mac"?)`}},
		{"bad posture condition", `{"postures": {"posture:p": ["node:os ‸= 'x'"]}}`,
			[]string{`posture posture:p: expected an operator`}},
		{"bad posture value", `{"postures": {"posture:p": ["node:osVersion >= ‸15.x"]}}`,
			[]string{`posture posture:p: values are 'quoted strings'`}},
		{"ordered boolean", `{"postures": {"posture:p": ["node:firewall > ‸true"]}}`,
			[]string{`posture posture:p: cannot order booleans`}},
		{"bad attribute", `{"postures": {"posture:p": ["‸os == 'macos'"]}}`,
			[]string{`posture posture:p: invalid attribute "os"`}},
		{"bad duration", `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"], "mfa": ‸"12"}]}`,
			[]string{`invalid mfa "12": not a duration`}},
		{"bad tz", `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"], "when": {"tz": ‸"Mars/Base"}}]}`,
			[]string{`unknown time zone "Mars/Base"`}},
		{"bad hours", `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"], "when": {"hours": "08:00-‸7pm"}}]}`,
			[]string{`invalid hours "08:00-7pm": "7pm" is not HH:MM`}},
		{"equal hours", `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"], "when": {"hours": "‸08:00-08:00"}}]}`,
			[]string{`invalid hours "08:00-08:00": start and end are equal`}},
		{"bad day", `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"], "when": {"days": ["Mon", ‸"Moon"]}}]}`,
			[]string{`unknown day "Moon"`}},
		{"every error, not just the first", "{\"acls\": [\n{\"action\": \"accept\", \"src\": [‸\"nobody\"], \"dst\": [\"*:*\"]},\n{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"‸*:x\"]},\n]}",
			[]string{`unknown src "nobody"`, `destination "*:x" has no ports`}},
		{"test src kind", `{"tests": [{"src": ‸"autogroup:member", "accept": ["1.2.3.4:1"]}]}`,
			[]string{`test src cannot be autogroup:member`}},
		{"test port", `{"tests": [{"src": "1.2.3.4", "accept": ["1.2.3.4:‸1-2"]}]}`,
			[]string{`invalid test port "1-2"`}},
		{"test checks nothing", `{"tests": [‸{"src": "1.2.3.4"}]}`,
			[]string{`test #1 checks nothing`}},
		{"failing accept test", "{\"tagOwners\": {\"tag:db\": []},\n\"acls\": [{\"action\": \"accept\", \"src\": [\"ann@example.com\"], \"dst\": [\"tag:db:22\"]}],\n\"tests\": [{\"src\": \"ann@example.com\", \"accept\": [‸\"tag:db:5432\"]}]}",
			[]string{`test failed: ann@example.com cannot reach tag:db:5432 over tcp, but the test expects accept (hint: closest is acls rule #1 (line 2): port: 5432 is not in 22)`}},
		{"failing deny test", "{\"tagOwners\": {\"tag:db\": []},\n\"acls\": [{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"tag:db:*\"]}],\n\"tests\": [{\"src\": \"100.100.0.1\", \"deny\": [‸\"tag:db:22\"]}]}",
			[]string{`test failed: 100.100.0.1 can reach tag:db:22 over tcp through acls rule #1 (line 2), but the test expects deny`}},
		{"too deep", strings.Repeat("[", 64) + "‸" + strings.Repeat("[", 36), []string{`nesting deeper than 64 levels`}},
		{"too large", "‸{" + strings.Repeat(" ", MaxSize) + "}", []string{`policy file is`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, marks := unmark(tc.src)
			if len(marks) != len(tc.want) {
				t.Fatalf("test case has %d marks for %d errors", len(marks), len(tc.want))
			}
			p, err := Parse([]byte(src))
			if err == nil {
				t.Fatalf("Parse succeeded: %v", p)
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error %T is not Errors", err)
			}
			if len(es) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(es), len(tc.want), err)
			}
			for i, w := range tc.want {
				want := fmt.Sprintf("%d:%d: %s", marks[i][0], marks[i][1], w)
				if !strings.HasPrefix(es[i].Error(), want) {
					t.Errorf("error %d:\n got %s\nwant %s...", i, es[i], want)
				}
				if es[i].Hint == "" {
					t.Errorf("error %d has no hint: %s", i, es[i])
				}
			}
			var one *Error
			if !errors.As(err, &one) || one != es[0] {
				t.Error("errors.As does not find the first *Error")
			}
		})
	}
}

// unmark removes every ‸ from s and returns the line and column (in
// characters, from 1) each pointed at.
func unmark(s string) (string, [][2]int) {
	var b strings.Builder
	var marks [][2]int
	line, col := 1, 1
	for _, r := range s {
		switch r {
		case '‸':
			marks = append(marks, [2]int{line, col})
			continue
		case '\n':
			line, col = line+1, 0
		}
		col++
		b.WriteRune(r)
	}
	return b.String(), marks
}

func TestErrorFormat(t *testing.T) {
	e := &Error{Line: 3, Col: 7, Message: "unknown group \"group:x\"", Hint: "define it"}
	if got, want := e.Error(), `3:7: unknown group "group:x" (hint: define it)`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	es := Errors{e, {Line: 4, Col: 1, Message: "m"}}
	if got, want := es.Error(), "3:7: unknown group \"group:x\" (hint: define it)\n4:1: m"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestColumnsCountCharacters(t *testing.T) {
	// "é" and "☃" are several bytes but one column each.
	_, err := Parse([]byte("{\"groups\": {\"group:é\": []}, // ☃\n\"acls\": [{\"action\": \"accept\", \"src\": [\"☃\"], \"dst\": [\"*:*\"]}]}"))
	var es Errors
	if !errors.As(err, &es) || len(es) != 2 {
		t.Fatalf("errors: %v", err)
	}
	if es[0].Line != 1 || es[0].Col != 13 {
		t.Errorf("first error at %d:%d, want 1:13: %v", es[0].Line, es[0].Col, es[0])
	}
	if es[1].Line != 2 || es[1].Col != 39 {
		t.Errorf("second error at %d:%d, want 2:39: %v", es[1].Line, es[1].Col, es[1])
	}
}

func TestErrorCap(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"acls": [`)
	for range 300 {
		b.WriteString(`{"action": "accept", "src": ["nobody"], "dst": ["*:*"]},`)
	}
	b.WriteString(`]}`)
	_, err := Parse([]byte(b.String()))
	var es Errors
	if !errors.As(err, &es) {
		t.Fatal(err)
	}
	if len(es) != maxErrors+1 || !strings.Contains(es[maxErrors].Message, "200 more errors") {
		t.Errorf("got %d errors, last %v", len(es), es[len(es)-1])
	}
}

func TestHuJSONFeatures(t *testing.T) {
	p := mustParse(t, `
	// A comment.
	{
		/* block */ "groups": {"group:eng": ["ann@example.com",],},
		"acls": [
			{"action": "accept", "src": ["group:eng"], "dst": ["*:22"],}, // trailing commas
		],
	}`)
	if len(p.rules) != 1 || len(p.Warnings()) != 0 {
		t.Errorf("rules %d warnings %v", len(p.rules), p.Warnings())
	}
	if len(p.Hash()) != 64 {
		t.Errorf("hash %q", p.Hash())
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name string
		acls string
		want []string
	}{
		{"duplicate", `{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:22"]},
			{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:22"]}`,
			[]string{"acls rule #2 allows nothing that acls rule #1"}},
		{"covered by a broader later rule", `{"action": "accept", "src": ["ann@example.com"], "dst": ["tag:db:5432"]},
			{"action": "accept", "src": ["group:eng", "tag:web"], "dst": ["tag:db:5000-6000", "tag:web:443"]}`,
			[]string{"acls rule #1 allows nothing that acls rule #2"}},
		{"star covers everything", `{"action": "accept", "src": ["*"], "dst": ["*:*"]},
			{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*", "10.0.0.0/8:22"], "proto": "udp"}`,
			[]string{"acls rule #2 allows nothing that acls rule #1"}},
		{"member and tagged cover users and tags", `{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:tagged:*"]},
			{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:22"]}`,
			[]string{"acls rule #2 allows nothing that acls rule #1"}},
		{"CIDRs", `{"action": "accept", "src": ["10.0.0.0/8"], "dst": ["100.64.0.0/10:*"]},
			{"action": "accept", "src": ["10.1.0.0/16"], "dst": ["100.64.0.7:80"]}`,
			[]string{"acls rule #2 allows nothing that acls rule #1"}},
		{"conditions make a rule narrower, not broader", `{"action": "accept", "src": ["*"], "dst": ["*:*"], "mfa": "1h"},
			{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:22"]}`, nil},
		{"a rule without conditions covers one with them", `{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:*"]},
			{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:22"], "mfa": "1h", "when": {"hours": "08:00-18:00"}}`,
			nil}, // conditional rules read literal sources differently; not compared
		{"same conditions", `{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:*"], "mfa": "12h"},
			{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:22"], "mfa": "1h"}`,
			[]string{"acls rule #2 allows nothing that acls rule #1"}},
		{"ports not covered", `{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:22"]},
			{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:22-23"]}`,
			[]string{"acls rule #1 allows nothing that acls rule #2"}},
		{"protocols not covered", `{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:*"], "proto": "tcp"},
			{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:22"]}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustParse(t, `{"groups": {"group:eng": ["ann@example.com"]}, "tagOwners": {"tag:db": [], "tag:web": []}, "acls": [`+tc.acls+`]}`)
			ws := p.Warnings()
			if len(ws) != len(tc.want) {
				t.Fatalf("got warnings %v, want %v", ws, tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(ws[i].Message, w) || ws[i].Hint == "" {
					t.Errorf("warning %d: %v, want %q", i, ws[i], w)
				}
			}
		})
	}
}

func TestMayTag(t *testing.T) {
	p := mustParse(t, `{
		"groups": {"group:ops": ["carol@example.com"]},
		"tagOwners": {
			"tag:db": ["group:ops"],
			"tag:web": ["autogroup:admin", "Ann@Example.com"],
			"tag:ci": ["tag:web"],
			"tag:any": ["autogroup:member"],
		},
	}`)
	tests := []struct {
		o    Owner
		tag  string
		want bool
	}{
		{Owner{Login: "carol@example.com"}, "tag:db", true},
		{Owner{Login: "dave@example.com", Groups: []string{"ops"}}, "tag:db", true},
		{Owner{Login: "dave@example.com", Groups: []string{"group:ops"}}, "tag:db", true},
		{Owner{Login: "dave@example.com"}, "tag:db", false},
		{Owner{Login: "dave@example.com", Admin: true}, "tag:db", false},
		{Owner{Login: "dave@example.com", Admin: true}, "tag:web", true},
		{Owner{Login: "ann@example.com"}, "tag:web", true},
		{Owner{Tags: []string{"tag:web"}}, "tag:ci", true},
		{Owner{Login: "ann@example.com"}, "tag:ci", false},
		{Owner{Login: "ann@example.com", Tags: []string{"tag:db"}}, "tag:web", false},
		{Owner{Login: "x@y.z"}, "tag:any", true},
		{Owner{Login: "carol@example.com"}, "tag:nope", false},
	}
	for _, tc := range tests {
		if got := p.MayTag(tc.o, tc.tag); got != tc.want {
			t.Errorf("MayTag(%+v, %s) = %v, want %v", tc.o, tc.tag, got, tc.want)
		}
	}
}
