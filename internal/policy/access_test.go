package policy

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// accessPolicy is the access section's worked example: engineers request
// the production database, SREs approve; on-call may break glass.
const accessPolicy = `{
	"groups": {"group:eng": ["ann@example.com", "bob@example.com"], "group:sre": ["sam@example.com"], "group:oncall": ["ann@example.com"]},
	"tagOwners": {"tag:prod-db": ["group:sre"], "tag:web": ["group:sre"]},
	"hosts": {"backups": "10.9.0.0/16"},
	"acls": [{"action": "accept", "src": ["group:eng"], "dst": ["tag:web:443"]}],
	"access": [
		{"src": ["group:eng"], "dst": ["tag:prod-db:5432", "backups:22"], "approvers": ["group:sre"], "maxDuration": "4h", "mfa": "15m", "reason": "required"},
		{"src": ["group:oncall"], "dst": ["tag:prod-db:*"], "approvers": [], "selfApprove": true, "maxDuration": "1h"},
		{"src": ["tag:web"], "dst": ["10.9.1.0/24:80-90"], "approvers": ["Sam@Example.com", "group:eng"], "maxDuration": "30d"},
	],
	"tests": [
		{"src": "bob@example.com", "canRequest": ["tag:prod-db:5432", "backups:22", "10.9.4.0/24:22"], "cannotRequest": ["tag:prod-db:22", "tag:web:443"]},
		{"src": "group:oncall", "canRequest": ["tag:prod-db:22"]},
		{"src": "tag:web", "canRequest": ["10.9.1.7:85", "10.9.1.0/25:80-90"], "cannotRequest": ["10.9.1.7:91", "10.9.0.0/16:80"]},
	],
}`

func TestAccessRules(t *testing.T) {
	p := mustParse(t, accessPolicy)
	rs := p.AccessRules()
	if len(rs) != 3 {
		t.Fatalf("got %d rules", len(rs))
	}
	want0 := AccessRule{Ref: "access[0]", Src: []string{"group:eng"}, Dst: []string{"tag:prod-db:5432", "backups:22"},
		Approvers: []string{"group:sre"}, MaxDuration: 4 * time.Hour, MFA: 15 * time.Minute, ReasonRequired: true}
	if got := rs[0]; got.Ref != want0.Ref || strings.Join(got.Src, ",") != "group:eng" ||
		strings.Join(got.Dst, ",") != strings.Join(want0.Dst, ",") || strings.Join(got.Approvers, ",") != "group:sre" ||
		got.MaxDuration != want0.MaxDuration || got.MFA != want0.MFA || !got.ReasonRequired || got.SelfApprove {
		t.Errorf("rule 0 = %+v, want %+v", got, want0)
	}
	if r := rs[1]; !r.SelfApprove || len(r.Approvers) != 0 || r.MaxDuration != time.Hour || r.ReasonRequired || r.Ref != "access[1]" {
		t.Errorf("rule 1 = %+v", r)
	}
	if r := rs[2]; r.MaxDuration != 30*24*time.Hour {
		t.Errorf("rule 2 = %+v", r)
	}
	rs[0].Src[0] = "changed"
	if p.AccessRules()[0].Src[0] != "group:eng" {
		t.Error("AccessRules shares its slices with the policy")
	}
}

func TestMatchAccess(t *testing.T) {
	p := mustParse(t, accessPolicy)
	ann := Node{ID: 1, User: "ann@example.com", Addresses: []netip.Prefix{netip.MustParsePrefix("100.64.0.1/32")}}
	bob := Node{ID: 2, User: "Bob@example.com"}
	carl := Node{ID: 3, User: "carl@example.com", Groups: []string{"eng"}} // eng through the IdP
	web := Node{ID: 4, Tags: []string{"tag:web"}}
	sam := Node{ID: 5, User: "sam@example.com"}
	tests := []struct {
		name    string
		n       Node
		dst     string
		rule    string
		wantErr error
	}{
		{"group member, exact", bob, "tag:prod-db:5432", "access[0]", nil},
		{"idp group member", carl, "tag:prod-db:5432", "access[0]", nil},
		{"first rule in file order", ann, "tag:prod-db:5432", "access[0]", nil},
		{"port outside the first rule: the second", ann, "tag:prod-db:22", "access[1]", nil},
		{"all ports only under a rule with all ports", ann, "tag:prod-db:*", "access[1]", nil},
		{"all ports refused under a narrower rule", bob, "tag:prod-db:*", "", ErrNoAccessRule},
		{"port outside", bob, "tag:prod-db:22", "", ErrNoAccessRule},
		{"host alias", bob, "backups:22", "access[0]", nil},
		{"prefix inside a host alias", bob, "10.9.200.0/24:22", "access[0]", nil},
		{"address inside a host alias", bob, "10.9.0.1:22", "access[0]", nil},
		{"prefix wider than the rule's", bob, "10.0.0.0/8:22", "", ErrNoAccessRule},
		{"tag source", web, "10.9.1.3:80-90", "access[2]", nil},
		{"range partly outside", web, "10.9.1.3:80-91", "", ErrNoAccessRule},
		{"tagged node is not its owners' user", web, "tag:prod-db:5432", "", ErrNoAccessRule},
		{"not a source", sam, "tag:prod-db:5432", "", ErrNoAccessRule},
		{"other selector", bob, "tag:web:443", "", ErrNoAccessRule},
		{"no ports", bob, "tag:prod-db", "", ErrBadDestination},
		{"unknown tag", bob, "tag:prod-dbb:5432", "", ErrBadDestination},
		{"bad port", bob, "tag:prod-db:70000", "", ErrBadDestination},
		{"empty", bob, "", "", ErrBadDestination},
		{"self", bob, "autogroup:self:22", "", ErrBadDestination},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := p.MatchAccess(tc.n, tc.dst)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("MatchAccess = %+v, %v; want %v", r, err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.dst) {
					t.Errorf("error %q does not name the destination", err)
				}
				return
			}
			if err != nil || r.Ref != tc.rule {
				t.Fatalf("MatchAccess = %q, %v; want %s", r.Ref, err, tc.rule)
			}
		})
	}
}

func TestMayApprove(t *testing.T) {
	p := mustParse(t, accessPolicy)
	tests := []struct {
		ref, login string
		idp        []string
		want       bool
	}{
		{"access[0]", "sam@example.com", nil, true},
		{"access[0]", "SAM@example.com", nil, true},
		{"access[0]", "bob@example.com", nil, false},
		{"access[0]", "zed@example.com", []string{"sre"}, true},
		{"access[0]", "zed@example.com", []string{"group:sre"}, true},
		{"access[0]", "zed@example.com", []string{"eng"}, false},
		{"access[1]", "ann@example.com", nil, false}, // break-glass: no approvers
		{"access[2]", "sam@example.com", nil, true},
		{"access[2]", "bob@example.com", nil, true},
		{"access[9]", "sam@example.com", nil, false},
		{"acls[0]", "sam@example.com", nil, false},
		{"access[0]", "", []string{"sre"}, false},
	}
	for _, tc := range tests {
		if got := p.MayApprove(tc.ref, tc.login, tc.idp); got != tc.want {
			t.Errorf("MayApprove(%s, %s, %v) = %v, want %v", tc.ref, tc.login, tc.idp, got, tc.want)
		}
	}
}

func TestAccessDiagnostics(t *testing.T) {
	const pre = `{"groups": {"group:eng": [], "group:sre": []}, "tagOwners": {"tag:db": []}, "access": [`
	runDiagCases(t, []diagCase{
		{"not an array", `{"access": ‸{}}`, []string{`access must be an array, not an object`}},
		{"missing fields", pre + `‸‸‸‸{}]}`, []string{`access rule #1 has no src`, `access rule #1 has no dst`,
			`access rule #1 has no approvers`, `access rule #1 has no maxDuration`}},
		{"unknown field with hint", pre + `{"src": ["group:eng"], "dst": ["tag:db:5432"], "approvers": ["group:sre"], "maxDuration": "1h", ‸"action": "accept"}]}`,
			[]string{`unknown field "action" in access rule #1 (hint: access rules have no action`}},
		{"misspelt field", pre + `‸{"src": ["group:eng"], "dst": ["tag:db:5432"], "approvers": ["group:sre"], ‸"maxDuraton": "1h"}]}`,
			[]string{`access rule #1 has no maxDuration`, `unknown field "maxDuraton" in access rule #1 (hint: did you mean "maxDuration"?)`}},
		{"unknown group in src", pre + `{"src": [‸"group:engg"], "dst": ["tag:db:5432"], "approvers": ["group:sre"], "maxDuration": "1h"}]}`,
			[]string{`unknown group "group:engg"`}},
		{"bad destination port", pre + `{"src": ["group:eng"], "dst": ["tag:db:‸5x"], "approvers": ["group:sre"], "maxDuration": "1h"}]}`,
			[]string{`invalid port "5x"`}},
		{"destination without ports", pre + `{"src": ["group:eng"], "dst": ["‸tag:db"], "approvers": ["group:sre"], "maxDuration": "1h"}]}`,
			[]string{`destination "tag:db" has no ports`}},
		{"self destination", pre + `{"src": ["group:eng"], "dst": [‸"autogroup:self:*"], "approvers": ["group:sre"], "maxDuration": "1h"}]}`,
			[]string{`autogroup:self cannot be an access destination`}},
		{"tag approver", pre + `{"src": ["group:eng"], "dst": ["tag:db:1"], "approvers": [‸"tag:db"], "maxDuration": "1h"}]}`,
			[]string{`tag:db cannot be an approver`}},
		{"admin approver", pre + `{"src": ["group:eng"], "dst": ["tag:db:1"], "approvers": [‸"autogroup:admin"], "maxDuration": "1h"}]}`,
			[]string{`autogroup:admin cannot be an approver`}},
		{"empty approvers without selfApprove", pre + `{"src": ["group:eng"], "dst": ["tag:db:1"], "approvers": ‸[], "maxDuration": "1h"}]}`,
			[]string{`access rule #1 has no approvers and no selfApprove`}},
		{"selfApprove with approvers", pre + `{"src": ["group:eng"], "dst": ["tag:db:1"], "approvers": ["group:sre"], "selfApprove": ‸true, "maxDuration": "1h"}]}`,
			[]string{`access rule #1 has both approvers and selfApprove`}},
		{"selfApprove not a boolean", pre + `{"src": ["group:eng"], "dst": ["tag:db:1"], "approvers": ["group:sre"], "selfApprove": ‸"yes", "maxDuration": "1h"}]}`,
			[]string{`selfApprove must be a boolean`}},
		{"bad duration", pre + `{"src": ["group:eng"], "dst": ["tag:db:1"], "approvers": ["group:sre"], "maxDuration": ‸"soon"}]}`,
			[]string{`invalid maxDuration "soon"`}},
		{"zero duration", pre + `{"src": ["group:eng"], "dst": ["tag:db:1"], "approvers": ["group:sre"], "maxDuration": ‸"0s"}]}`,
			[]string{`invalid maxDuration "0s": must be positive`}},
		{"too long", pre + `{"src": ["group:eng"], "dst": ["tag:db:1"], "approvers": ["group:sre"], "maxDuration": ‸"31d"}]}`,
			[]string{`maxDuration "31d" is longer than 30d`}},
		{"bad mfa", pre + `{"src": ["group:eng"], "dst": ["tag:db:1"], "approvers": ["group:sre"], "maxDuration": "1h", "mfa": ‸"x"}]}`,
			[]string{`invalid mfa "x"`}},
		{"bad reason", pre + `{"src": ["group:eng"], "dst": ["tag:db:1"], "approvers": ["group:sre"], "maxDuration": "1h", "reason": ‸"always"}]}`,
			[]string{`invalid reason "always"`}},
		{"multi-line position", "{\"groups\": {\"group:eng\": []},\n \"access\": [\n  {\"src\": [\"group:eng\"],\n   \"dst\": [\"‸tag:nope:1\"], \"approvers\": [\"group:eng\"], \"maxDuration\": \"1h\"}]}",
			[]string{`tag "tag:nope" has no tagOwners entry`}},
		{"failing canRequest", pre + `{"src": ["group:eng"], "dst": ["tag:db:5432"], "approvers": ["group:sre"], "maxDuration": "1h"}],
			"tests": [{"src": "tag:db", "canRequest": [‸"tag:db:5432"]}]}`,
			[]string{`test failed: tag:db cannot request tag:db:5432, but the test expects it can`}},
		{"failing cannotRequest", `{"groups": {"group:sre": ["sam@example.com"]}, "tagOwners": {"tag:db": []}, "access": [{"src": ["sam@example.com"], "dst": ["tag:db:*"], "approvers": ["group:sre"], "maxDuration": "1h"}],
			"tests": [{"src": "sam@example.com", "cannotRequest": [‸"tag:db:22"]}]}`,
			[]string{`test failed: sam@example.com can request tag:db:22 through access[0], but the test expects it cannot`}},
		{"bad canRequest destination", `{"tagOwners": {"tag:db": []}, "tests": [{"src": "sam@example.com", "canRequest": ["‸tag:db"]}]}`,
			[]string{`destination "tag:db" has no ports`}},
	})
}

// FuzzMatchAccess checks that a requested destination from the network
// never panics MatchAccess, and that what it accepts parses again the
// same way and errs only with its documented errors.
func FuzzMatchAccess(f *testing.F) {
	p, err := Parse([]byte(accessPolicy))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"tag:prod-db:5432", "tag:prod-db:*", "backups:22", "10.9.1.0/24:80-90", "[fd7a::1]:22",
		"ipset:x:1", "autogroup:self:*", "tag:prod-db", "", "*:*", "user:*@example.com:22", "host:backups:22"} {
		f.Add(s)
	}
	ann := Node{ID: 1, User: "ann@example.com"}
	f.Fuzz(func(t *testing.T, dst string) {
		r, err := p.MatchAccess(ann, dst)
		if err != nil {
			if !errors.Is(err, ErrNoAccessRule) && !errors.Is(err, ErrBadDestination) {
				t.Fatalf("MatchAccess(%q): undocumented error %v", dst, err)
			}
			return
		}
		if r2, err := p.MatchAccess(ann, dst); err != nil || r2.Ref != r.Ref {
			t.Fatalf("MatchAccess(%q) not deterministic: %v / %v", dst, r.Ref, err)
		}
	})
}
