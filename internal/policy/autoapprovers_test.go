package policy

import (
	"net/netip"
	"reflect"
	"testing"
)

const approverDefs = `"groups": {"group:net": ["ann@example.com"]}, "tagOwners": {"tag:router": [], "tag:exit": []}, "acls": []`

func TestAutoApprovers(t *testing.T) {
	p := mustParse(t, `{`+approverDefs+`, "autoApprovers": {
		"routes": {"10.0.0.0/16": ["group:net", "tag:router", "Bob@Example.com", "tag:router"], "fd00::/64": ["tag:router"], "0.0.0.0/0": []},
		"exitNode": ["tag:exit"],
	}}`)
	want := &AutoApprovers{
		Routes: []RouteApprovers{
			{Prefix: netip.MustParsePrefix("10.0.0.0/16"), Approvers: []string{"group:net", "tag:router", "bob@example.com"}},
			{Prefix: netip.MustParsePrefix("fd00::/64"), Approvers: []string{"tag:router"}},
			{Prefix: netip.MustParsePrefix("0.0.0.0/0"), Approvers: []string{}},
		},
		ExitNode: []string{"tag:exit"},
	}
	if got := p.AutoApprovers(); !reflect.DeepEqual(got, want) {
		t.Errorf("AutoApprovers() = %+v, want %+v", got, want)
	}
	if got := mustParse(t, `{"acls": []}`).AutoApprovers(); got != nil {
		t.Errorf("AutoApprovers() without the section = %+v, want nil", got)
	}
}

func TestAutoApproversWarning(t *testing.T) {
	runWarnCases(t, []warnCase{
		{"any autoApprovers", `{` + approverDefs + `, "autoApprovers": ‸{"exitNode": ["tag:exit"]}}`,
			[]string{"autoApprovers: accepted; Warren has no subnet routers or exit nodes yet"}},
	})
}

func TestAutoApproversErrors(t *testing.T) {
	runDiagCases(t, []diagCase{
		{"not an object", `{"autoApprovers": ‸[]}`, []string{`autoApprovers must be an object, not an array`}},
		{"unknown field", `{"autoApprovers": {‸"route": {}}}`, []string{`unknown field "route" in autoApprovers (hint: did you mean "routes"?)`}},
		{"host bits set", `{` + approverDefs + `, "autoApprovers": {"routes": {‸"10.0.0.1/16": ["tag:router"]}}}`,
			[]string{`autoApprovers route: CIDR "10.0.0.1/16" has bits set after the prefix length (hint: write "10.0.0.0/16" for the network`}},
		{"not a CIDR", `{` + approverDefs + `, "autoApprovers": {"routes": {‸"10.0.0.1": ["tag:router"], ‸"lan": []}}}`,
			[]string{`autoApprovers route: a route is a CIDR, not a single address (hint: write the route as a CIDR, e.g. 10.0.0.1/32)`,
				`autoApprovers route: invalid IP address "lan"`}},
		{"undefined tag and group", `{` + approverDefs + `, "autoApprovers": {"routes": {"10.0.0.0/8": [‸"tag:routr"]}, "exitNode": [‸"group:nett"]}}`,
			[]string{`tag "tag:routr" has no tagOwners entry (hint: did you mean "tag:router"?)`, `unknown group "group:nett"`}},
		{"autogroups, star and addresses are not approvers", `{` + approverDefs + `, "autoApprovers": {"exitNode": [‸"autogroup:member", ‸"*", ‸"10.0.0.1", ‸"autogroup:internet"]}}`,
			[]string{`autogroup:member cannot be an auto-approver`, `* cannot be an auto-approver`, `10.0.0.1 cannot be an auto-approver`, `autogroup:internet cannot be a src`}},
		{"approvers not a list", `{` + approverDefs + `, "autoApprovers": {"exitNode": ‸"tag:exit"}}`,
			[]string{`autoApprovers.exitNode must be an array, not a string`}},
	})
}
