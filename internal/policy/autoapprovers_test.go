package policy

import (
	"net/netip"
	"reflect"
	"testing"
)

const approverDefs = `"groups": {"group:net": ["ann@example.com"]}, "tagOwners": {"tag:router": [], "tag:exit": [], "tag:everything": [], "tag:other": []}, "acls": []`

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

func TestAutoApproversNoWarning(t *testing.T) {
	runWarnCases(t, []warnCase{
		{"any autoApprovers", `{` + approverDefs + `, "autoApprovers": {"exitNode": ["tag:exit"]}}`, nil},
	})
}

// TestAutoApproves checks Tailscale's documented rules: a route inside an
// approved prefix, by a matching user, group or tag; exit routes only by
// exitNode; tagged nodes only by their tags.
func TestAutoApproves(t *testing.T) {
	p := mustParse(t, `{`+approverDefs+`, "autoApprovers": {
		"routes": {
			"10.0.0.0/16": ["group:net", "tag:router"],
			"10.9.0.0/24": ["bob@example.com"],
			"fd00::/64": ["tag:router"],
			"0.0.0.0/0": ["tag:everything"],
		},
		"exitNode": ["tag:exit", "group:net"],
	}}`)
	pfx := netip.MustParsePrefix
	ann := Node{ID: 1, User: "ann@example.com"} // in group:net
	annIdP := Node{ID: 2, User: "Ann@Example.com", Groups: []string{"other"}}
	bob := Node{ID: 3, User: "bob@example.com"}
	carl := Node{ID: 4, User: "carl@example.com", Groups: []string{"net"}} // group:net from the identity provider
	router := Node{ID: 5, Tags: []string{"tag:router"}}
	exit := Node{ID: 6, Tags: []string{"tag:exit"}}
	everything := Node{ID: 7, Tags: []string{"tag:everything"}}
	for _, tc := range []struct {
		name  string
		n     Node
		route string
		want  bool
	}{
		{"the exact prefix", router, "10.0.0.0/16", true},
		{"a prefix inside", router, "10.0.5.0/24", true},
		{"a single address inside", router, "10.0.5.7/32", true},
		{"host bits are masked", router, "10.0.5.7/24", true},
		{"wider than approved", router, "10.0.0.0/8", false},
		{"outside", router, "10.1.0.0/24", false},
		{"IPv6 inside", router, "fd00::/80", true},
		{"IPv6 wider", router, "fd00::/48", false},
		{"a group member", ann, "10.0.1.0/24", true},
		{"a login in another case", annIdP, "10.0.1.0/24", true},
		{"an identity-provider group", carl, "10.0.1.0/24", true},
		{"a user", bob, "10.9.0.0/24", true},
		{"the user elsewhere", bob, "10.0.1.0/24", false},
		{"a tag the node lacks", exit, "10.0.1.0/24", false},
		{"exit by exitNode tag", exit, "0.0.0.0/0", true},
		{"IPv6 exit by exitNode tag", exit, "::/0", true},
		{"exit by exitNode group", ann, "::/0", true},
		{"exit not by routes", router, "0.0.0.0/0", false},
		{"a routes entry for 0.0.0.0/0 approves no exit node", everything, "0.0.0.0/0", false},
		{"but the subnets inside it", everything, "192.168.1.0/24", true},
		{"IPv4 entries approve no IPv6", everything, "fd00::/64", false},
		{"tagged nodes are not their user's", Node{ID: 8, User: "bob@example.com", Tags: []string{"tag:other"}}, "10.9.0.0/24", false},
		{"invalid route", router, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var route netip.Prefix
			if tc.route != "" {
				route = pfx(tc.route)
				if !route.IsValid() {
					t.Fatal(tc.route)
				}
			}
			if got := p.AutoApproves(&tc.n, route); got != tc.want {
				t.Errorf("AutoApproves(%+v, %s) = %v, want %v", tc.n, tc.route, got, tc.want)
			}
		})
	}
	if mustParse(t, `{"acls": []}`).AutoApproves(&router, pfx("10.0.0.0/16")) {
		t.Error("a policy without autoApprovers approves a route")
	}
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
