package policy

import (
	"encoding/json"
	"reflect"
	"testing"
)

const attrDefs = `"groups": {"group:eng": ["ann@example.com"]}, "tagOwners": {"tag:db": []}, "acls": []`

func TestNodeAttrs(t *testing.T) {
	p := mustParse(t, `{`+attrDefs+`, "nodeAttrs": [
		{"target": ["tag:db"], "attr": ["funnel", "mullvad"]},
		{"target": ["group:eng", "bob@example.com"], "attr": ["funnel", "drive:share"], "app": {"example.com/cap/y": [{"paths": ["/x"]}, 7]}},
		{"target": ["*"], "attr": ["magicdns-aaaa"]},
	]}`)
	got := p.NodeAttrs()
	if len(got) != 3 {
		t.Fatalf("NodeAttrs() has %d entries, want 3", len(got))
	}
	if !reflect.DeepEqual(got[1].Target, []string{"group:eng", "bob@example.com"}) || !reflect.DeepEqual(got[1].Attr, []string{"funnel", "drive:share"}) {
		t.Errorf("entry 2 = %+v", got[1])
	}
	wantApp := map[string][]json.RawMessage{"example.com/cap/y": {json.RawMessage(`{"paths":["/x"]}`), json.RawMessage(`7`)}}
	if !reflect.DeepEqual(got[1].App, wantApp) {
		t.Errorf("entry 2 app = %s, want %s", got[1].App, wantApp)
	}
	tests := []struct {
		name string
		node Node
		want []string
	}{
		{"tagged node", tagNode(1, "tag:db"), []string{"funnel", "mullvad", "magicdns-aaaa"}},
		{"group member", userNode(2, "Ann@example.com"), []string{"funnel", "drive:share", "magicdns-aaaa"}},
		{"named user", userNode(3, "bob@example.com"), []string{"funnel", "drive:share", "magicdns-aaaa"}},
		{"anyone else", userNode(4, "cy@example.com"), []string{"magicdns-aaaa"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.NodeAttrsFor(&tc.node); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("NodeAttrsFor = %q, want %q", got, tc.want)
			}
		})
	}
	if got := mustParse(t, `{"acls": []}`).NodeAttrsFor(&tests[0].node); got != nil {
		t.Errorf("NodeAttrsFor without nodeAttrs = %q", got)
	}
}

func TestNodeAttrsWarnings(t *testing.T) {
	runWarnCases(t, []warnCase{
		{"each attribute once", `{` + attrDefs + `, "nodeAttrs": [
			{"target": ["tag:db"], "attr": [‸"funnel", ‸"mullvad"]},
			{"target": ["*"], "attr": ["funnel"], "app": {‸"example.com/cap/z": []}},
		]}`, []string{"nodeAttrs: delivered to the targeted nodes, has no effect in Warren yet: funnel",
			"nodeAttrs: delivered to the targeted nodes, has no effect in Warren yet: mullvad",
			"nodeAttrs: delivered to the targeted nodes, has no effect in Warren yet: example.com/cap/z"}},
		{"empty section", `{"acls": [], "nodeAttrs": []}`, nil},
		{"targets nothing, sets nothing, as Tailscale accepts", `{"acls": [], "nodeAttrs": [‸{"target": [], "attr": [‸"funnel"]}, ‸{"target": ["*"]}, ‸{"attr": []}]}`,
			[]string{"nodeAttrs entry #1 has no target: it applies to no node", "has no effect in Warren yet: funnel", "nodeAttrs entry #2 sets no attribute",
				"nodeAttrs entry #3 has no target"}},
		{"ipPool", `{"acls": [], "nodeAttrs": [{"target": ["*"], "ipPool": ‸["100.81.0.0/16"]}]}`,
			[]string{"nodeAttrs: accepted, has no effect in Warren: ipPool"}},
	})
}

func TestNodeAttrsErrors(t *testing.T) {
	runDiagCases(t, []diagCase{
		{"not an array", `{"nodeAttrs": ‸{}}`, []string{`nodeAttrs must be an array, not an object`}},
		{"bad target", `{"nodeAttrs": [{"target": [‸"%bogus%"], "attr": ["funnel"]}]}`, []string{`unknown src "%bogus%"`}},
		{"reserved ipPool", `{"nodeAttrs": [{"target": ["*"], "ipPool": [‸"100.100.100.0/24", ‸"100.115.92.0/24", ‸"10.0.0.1/8"]}]}`,
			[]string{`IPPool(100.100.100.0/24): network within reserved range`, `IPPool(100.115.92.0/24): network within reserved range`,
				`ipPool: CIDR "10.0.0.1/8" has bits set after the prefix length`}},
		{"autogroup:self target", `{"nodeAttrs": [{"target": [‸"autogroup:self"], "attr": ["funnel"]}]}`, []string{`autogroup:self cannot be a source`}},
		{"unknown target", `{` + attrDefs + `, "nodeAttrs": [{"target": [‸"tag:dbb", ‸"group:eng2"], "attr": ["funnel"]}]}`,
			[]string{`tag "tag:dbb" has no tagOwners entry (hint: did you mean "tag:db"?)`, `unknown group "group:eng2"`}},
		{"autogroup:internet is not a target", `{"nodeAttrs": [{"target": [‸"autogroup:internet"], "attr": ["funnel"]}]}`,
			[]string{`autogroup:internet cannot be a src`}},
		{"bad attribute", `{"nodeAttrs": [{"target": ["*"], "attr": [‸"", ‸" funnel", ‸3]}]}`,
			[]string{`invalid attribute ""`, `invalid attribute " funnel"`, `each entry of attr must be a string, not a number`}},
		{"bad capability", `{"nodeAttrs": [{"target": ["*"], "app": {‸"nocap": [], "example.com/cap/a": ‸{}}}]}`,
			[]string{`invalid capability name "nocap"`, `the values of example.com/cap/a must be an array, not an object`}},
		{"unknown field", `{"nodeAttrs": [{"target": ["*"], "attr": ["funnel"], ‸"attrs": []}]}`,
			[]string{`unknown field "attrs" in nodeAttrs entry #1 (hint: did you mean "attr"?)`}},
	})
}

// TestNodeCapMap: what the targeted node receives in its netmap: each
// attribute a key without values, each capability its values, several
// entries' values appended in file order; nothing for others.
func TestNodeCapMap(t *testing.T) {
	p := mustParse(t, `{`+attrDefs+`, "nodeAttrs": [
		{"target": ["tag:db"], "attr": ["funnel"], "app": {"example.com/cap/y": [1]}},
		{"target": ["tag:db", "group:eng"], "attr": ["funnel", "mullvad"], "app": {"example.com/cap/y": [{"a": 2}], "unknown.example/z": []}},
		{"target": ["tag:db"], "ipPool": ["100.81.0.0/16"]},
	]}`)
	raw := func(s ...string) []json.RawMessage {
		var out []json.RawMessage
		for _, x := range s {
			out = append(out, json.RawMessage(x))
		}
		return out
	}
	tests := []struct {
		name string
		node Node
		want map[string][]json.RawMessage
	}{
		{"both entries", tagNode(1, "tag:db"), map[string][]json.RawMessage{
			"funnel": nil, "mullvad": nil, "example.com/cap/y": raw(`1`, `{"a":2}`), "unknown.example/z": nil}},
		{"one entry", userNode(2, "ann@example.com"), map[string][]json.RawMessage{
			"funnel": nil, "mullvad": nil, "example.com/cap/y": raw(`{"a":2}`), "unknown.example/z": nil}},
		{"not targeted", userNode(3, "bob@example.com"), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.NodeCapMap(&tc.node); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("NodeCapMap = %s, want %s", got, tc.want)
			}
		})
	}
	if got := mustParse(t, `{"acls": []}`).NodeCapMap(&tests[0].node); got != nil {
		t.Errorf("NodeCapMap without nodeAttrs = %s", got)
	}
}
