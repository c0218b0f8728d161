package policy

import (
	"reflect"
	"slices"
	"testing"
	"time"
)

// TestFilterRuleIDs: every compiled filter rule names the acls rule or
// grant it came from, by its index in the file; rules from different
// entries are never merged into one.
func TestFilterRuleIDs(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		policy string
		want   []string // Rule of each filter rule of node 10, in order
	}{
		{"acls", `{"tagOwners": {"tag:db": [], "tag:web": []}, "acls": [
			{"action": "accept", "src": ["bob@example.com"], "dst": ["tag:web:80"]},
			{"action": "accept", "src": ["ann@example.com"], "dst": ["tag:db:5432"]},
			{"action": "accept", "src": ["ann@example.com"], "dst": ["tag:db:22"]},
		]}`, []string{"acls[1]", "acls[2]"}},
		{"grants", `{"tagOwners": {"tag:db": []}, "grants": [
			{"src": ["ann@example.com"], "dst": ["tag:db"], "ip": ["5432"]},
			{"src": ["ann@example.com"], "dst": ["tag:db"], "app": {"example.com/cap/x": [{}]}},
		]}`, []string{"grants[0]", "grants[1]"}},
		{"acls then grants", `{"tagOwners": {"tag:db": []},
			"acls": [{"action": "accept", "src": ["ann@example.com"], "dst": ["tag:db:22"]}],
			"grants": [{"src": ["ann@example.com"], "dst": ["tag:db"], "ip": ["443"]}]}`, []string{"acls[0]", "grants[0]"}},
		{"default rule", `{"tagOwners": {"tag:db": []}}`, []string{"default"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewGraph(mustParse(t, tc.policy), t0, tagNode(10, "tag:db"), userNode(1, "ann@example.com"))
			var got []string
			for _, r := range g.Filter(10) {
				got = append(got, r.Rule)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("rule ids = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestFlowLogsOption: "flowLogs": false turns flow logs off on every node
// (the attribute in each node's CapMap); the nodeAttrs attribute turns
// them off for the nodes it targets, without a warning.
func TestFlowLogsOption(t *testing.T) {
	db, ann := tagNode(10, "tag:db"), userNode(1, "ann@example.com")
	tests := []struct {
		name    string
		policy  string
		off     bool     // Options().FlowLogsOff
		offFor  []string // nodes whose CapMap carries the attribute
		warning bool
	}{
		{"default on", `{"acls": []}`, false, nil, false},
		{"true says nothing", `{"acls": [], "flowLogs": true}`, false, nil, false},
		{"false for all", `{"acls": [], "flowLogs": false}`, true, []string{"db", "ann"}, false},
		{"per tag", `{"tagOwners": {"tag:db": []}, "acls": [], "nodeAttrs": [{"target": ["tag:db"], "attr": ["warren:flow-logs-off"]}]}`, false, []string{"db"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustParse(t, tc.policy)
			if got := p.Options().FlowLogsOff; got != tc.off {
				t.Errorf("FlowLogsOff = %v, want %v", got, tc.off)
			}
			var offFor []string
			for name, n := range map[string]*Node{"db": &db, "ann": &ann} {
				if _, ok := p.NodeCapMap(n)[AttrFlowLogsOff]; ok {
					offFor = append(offFor, name)
				}
			}
			slices.Sort(offFor)
			want := slices.Sorted(slices.Values(tc.offFor))
			if !reflect.DeepEqual(offFor, want) {
				t.Errorf("flow logs off for %q, want %q", offFor, want)
			}
			if len(p.Warnings()) > 0 {
				t.Errorf("warnings: %v", p.Warnings())
			}
		})
	}
}

func TestFlowLogsOptionErrors(t *testing.T) {
	runDiagCases(t, []diagCase{
		{"not a boolean", `{"acls": [], "flowLogs": ‸{"tag:db": false}}`, []string{`flowLogs must be a boolean, not an object`}},
	})
}
