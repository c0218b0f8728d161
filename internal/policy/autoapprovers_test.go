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
			[]string{"autoApprovers: approves the routes nodes advertise, but Warren nodes do not forward subnet or exit traffic yet"}},
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

func TestAutoApproves(t *testing.T) {
	p := mustParse(t, `{"groups": {"group:net": ["ann@example.com"]}, "tagOwners": {"tag:router": [], "tag:exit": [], "tag:other": []}, "acls": [],
		"autoApprovers": {
			"routes": {"10.0.0.0/16": ["group:net", "tag:router"], "192.168.0.0/24": ["Bob@Example.com"], "fd00:20::/48": ["tag:router"], "0.0.0.0/0": ["tag:router"]},
			"exitNode": ["tag:exit", "group:net"],
		}}`)
	ann := Owner{Login: "ann@example.com"}
	bob := Owner{Login: "BOB@example.com"}
	carl := Owner{Login: "carl@example.com", Groups: []string{"net"}} // the group from the identity provider
	dave := Owner{Login: "dave@example.com"}
	router := Owner{Tags: []string{"tag:router"}}
	exit := Owner{Tags: []string{"tag:exit"}}
	// A tagged node registered by a user in group:net is owned by its
	// tags: the user's groups do not count.
	taggedByAnn := Owner{Login: "ann@example.com", Tags: []string{"tag:other"}}
	pfx := netip.MustParsePrefix
	tests := []struct {
		o     Owner
		route string
		want  bool
	}{
		{ann, "10.0.0.0/16", true},
		{ann, "10.0.5.0/24", true},  // inside an approved prefix
		{ann, "10.0.0.0/8", false},  // wider than it
		{ann, "10.1.0.0/24", false}, // beside it
		{carl, "10.0.5.0/24", true},
		{dave, "10.0.5.0/24", false},
		{router, "10.0.0.0/16", true},
		{router, "fd00:20:0:1::/64", true},
		{router, "fd00:21::/64", false},
		{bob, "192.168.0.0/24", true},
		{ann, "192.168.0.0/24", false},
		{taggedByAnn, "10.0.0.0/16", false},
		// Exit routes: only through exitNode, never through a routes
		// entry of 0.0.0.0/0.
		{exit, "0.0.0.0/0", true},
		{exit, "::/0", true},
		{ann, "0.0.0.0/0", true},
		{router, "0.0.0.0/0", false},
		{router, "::/0", false},
		{exit, "10.0.0.0/16", false},
		{router, "1.0.0.0/8", true}, // inside the routes entry 0.0.0.0/0, which is not an exit approval
	}
	for _, tt := range tests {
		if got := p.AutoApproves(tt.o, pfx(tt.route)); got != tt.want {
			t.Errorf("AutoApproves(%+v, %s) = %v, want %v", tt.o, tt.route, got, tt.want)
		}
	}
	if mustParse(t, `{"acls": []}`).AutoApproves(router, pfx("10.0.0.0/16")) {
		t.Error("a policy without autoApprovers approved a route")
	}
}
