package netmap

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/internal/wire"
)

// attrsPolicy gives tag:db nodes an attribute and a capability, and
// grants web nodes an app capability on db nodes.
const attrsPolicy = `{
	"tagOwners": {"tag:db": [], "tag:web": []},
	"acls": [{"action": "accept", "src": ["tag:db"], "dst": ["tag:db:*"]}],
	"grants": [{"src": ["tag:web"], "dst": ["tag:db"], "app": {"example.com/cap/db": [{"role": "reader"}]}}],
	"nodeAttrs": [
		{"target": ["tag:db"], "attr": ["funnel"], "app": {"example.com/cap/x": [1]}},
		{"target": ["tag:db"], "attr": ["funnel", "mullvad"], "app": {"example.com/cap/x": [2]}},
	],
}`

func capMapText(m map[string][]json.RawMessage) map[string]string {
	out := map[string]string{}
	for k, vs := range m {
		var s []string
		for _, v := range vs {
			s = append(s, string(v))
		}
		out[k] = "[" + strings.Join(s, ",") + "]"
	}
	return out
}

// TestSelfCapMap: a node targeted by nodeAttrs receives its attributes
// and capabilities in its own record (full maps and self deltas), peers
// never see them, other nodes receive none, and a policy change that only
// changes nodeAttrs reaches the node.
func TestSelfCapMap(t *testing.T) {
	e := newEngine(t, Config{Policy: mustPolicy(t, attrsPolicy)})
	e.Upsert(testNode(1, 10, "tag:db"))
	e.Upsert(testNode(2, 10, "tag:db"))
	e.Upsert(testNode(3, 10, "tag:web"))
	s1, _ := e.Subscribe(1)
	s3, _ := e.Subscribe(3)

	want := map[string]string{"funnel": "[]", "mullvad": "[]", "example.com/cap/x": "[1,2]"}
	full := next(t, s1)
	if got := capMapText(full.Self.CapMap); !maps.Equal(got, want) {
		t.Fatalf("node 1's CapMap = %v, want %v", got, want)
	}
	for _, p := range full.Peers {
		if p.CapMap != nil {
			t.Fatalf("peer %d carries a CapMap: %v", p.ID, p.CapMap)
		}
	}
	if f3 := next(t, s3); f3.Self.CapMap != nil {
		t.Fatalf("node 3 (not targeted) has CapMap %v", f3.Self.CapMap)
	}

	// The grant's app capability: in 1's filter, from 3, allowing nothing.
	var capRules []wire.FilterRule
	for _, r := range full.PacketFilter {
		if len(r.CapGrant) > 0 {
			capRules = append(capRules, r)
		}
	}
	if len(capRules) != 1 || !slices.Equal(capRules[0].SrcPrefixes, testNode(3, 10).Wire.Addresses) ||
		len(capRules[0].DstPorts) != 0 || capRules[0].CapGrant[0].CapMap["example.com/cap/db"] == nil {
		t.Fatalf("capability rules of node 1 = %+v", capRules)
	}

	// A self delta (new hostname) still carries the CapMap, and a CapMap
	// set by the caller is not passed on.
	n1 := testNode(1, 10, "tag:db")
	n1.Wire.NodeKey = full.Self.NodeKey
	n1.Wire.Hostname = "renamed"
	n1.Wire.CapMap = map[string][]json.RawMessage{"example.com/cap/forged": nil}
	e.Upsert(n1)
	d := next(t, s1)
	if d.Self == nil || d.Self.Hostname != "renamed" || !maps.Equal(capMapText(d.Self.CapMap), want) {
		t.Fatalf("self delta = %+v", d.Self)
	}
	if n, _ := e.Node(1); n.Wire.CapMap != nil {
		t.Fatalf("the engine's record of node 1 carries %v", n.Wire.CapMap)
	}
	// Node 3 is a source of the app grant, so (as in Tailscale) node 1 is
	// its peer: it sees the new hostname, and never node 1's CapMap.
	d3 := next(t, s3)
	if len(d3.PeersChanged) != 1 || d3.PeersChanged[0].Hostname != "renamed" || d3.PeersChanged[0].CapMap != nil {
		t.Fatalf("node 3's delta = %+v", d3)
	}

	// Changing only nodeAttrs sends node 1 a full map with the new ones.
	e.SetPolicy(mustPolicy(t, `{
		"tagOwners": {"tag:db": [], "tag:web": []},
		"acls": [{"action": "accept", "src": ["tag:db"], "dst": ["tag:db:*"]}],
		"grants": [{"src": ["tag:web"], "dst": ["tag:db"], "app": {"example.com/cap/db": [{"role": "reader"}]}}],
		"nodeAttrs": [{"target": ["tag:db"], "attr": ["funnel"]}],
	}`))
	d = next(t, s1)
	if !d.Full || !maps.Equal(capMapText(d.Self.CapMap), map[string]string{"funnel": "[]"}) {
		t.Fatalf("after the policy change, node 1 got %+v", d.Self)
	}
	nothingQueued(t, s3)
}
