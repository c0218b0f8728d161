package policy

import (
	"maps"
	"slices"
	"testing"

	"github.com/warrenmesh/warren/internal/wire"
)

// TestGrantAppDelivered: a grant's app capabilities reach the nodes its
// dst selects, as capability rules keyed by the sources the same grant's
// ip would allow, and no other node; they never carry ports.
func TestGrantAppDelivered(t *testing.T) {
	const caps = " [example.com/cap/x]"
	const app = `"app": {"example.com/cap/x": [{"v": 1}]}`
	tests := []struct {
		name   string
		grants string
		want   map[wire.NodeID][]string // nodes not listed: empty filter
	}{
		{
			name:   "to a tag, from a group",
			grants: `{"src": ["group:eng"], "dst": ["tag:db"], ` + app + `}`,
			want:   map[wire.NodeID][]string{5: {"100.64.0.1,100.64.0.2,100.64.0.3,100.64.0.4 -> caps 100.64.0.5" + caps}},
		},
		{
			name:   "with ip: the port rule, then the capabilities",
			grants: `{"src": ["ann@example.com"], "dst": ["tag:db"], "ip": ["tcp:5432"], ` + app + `}`,
			want: map[wire.NodeID][]string{5: {
				"100.64.0.1,100.64.0.2 -> 100.64.0.5:5432 [6]",
				"100.64.0.1,100.64.0.2 -> caps 100.64.0.5" + caps,
			}},
		},
		{
			name:   "every address of the destination",
			grants: `{"src": ["tag:db"], "dst": ["tag:web"], ` + app + `}`,
			want:   map[wire.NodeID][]string{6: {"100.64.0.5 -> caps 100.64.0.6,fd7a:115c:a1e0::6" + caps}},
		},
		{
			name:   "autogroup:self: each owner's own devices",
			grants: `{"src": ["group:eng"], "dst": ["autogroup:self"], ` + app + `}`,
			want: map[wire.NodeID][]string{
				1: {"100.64.0.1,100.64.0.2 -> caps 100.64.0.1" + caps},
				2: {"100.64.0.1,100.64.0.2 -> caps 100.64.0.2" + caps},
				3: {"100.64.0.3 -> caps 100.64.0.3" + caps},
				4: {"100.64.0.4 -> caps 100.64.0.4" + caps},
			},
		},
		{
			name:   "srcPosture narrows the sources",
			grants: `{"src": ["group:eng"], "dst": ["tag:db"], "srcPosture": ["posture:mac"], ` + app + `}`,
			want:   map[wire.NodeID][]string{5: {"100.64.0.1 -> caps 100.64.0.5" + caps}},
		},
		{
			name:   "an address source and an address destination",
			grants: `{"src": ["office"], "dst": ["dbhost"], ` + app + `}`,
			want:   map[wire.NodeID][]string{5: {"10.1.0.0/16 -> caps 100.64.0.5" + caps}},
		},
		{
			name:   "no eligible source: nothing delivered",
			grants: `{"src": ["group:contractors"], "dst": ["tag:db"], "srcPosture": ["posture:mac"], ` + app + `}`,
			want:   map[wire.NodeID][]string{},
		},
		{
			name:   "two grants, in file order",
			grants: `{"src": ["tag:web"], "dst": ["tag:db"], ` + app + `}, {"src": ["bob@example.com"], "dst": ["tag:db"], "app": {"example.com/cap/y": []}}`,
			want: map[wire.NodeID][]string{5: {
				"100.64.0.6,fd7a:115c:a1e0::6 -> caps 100.64.0.5" + caps,
				"100.64.0.3 -> caps 100.64.0.5 [example.com/cap/y]",
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, p := compileOne(t, `"grants": [`+tt.grants+`]`)
			if !equalFilters(got, tt.want) {
				t.Fatalf("filters\n%v\nwant\n%v", got, tt.want)
			}
			g := NewGraph(p, t0, compileNodes()...)
			for _, n := range compileNodes() {
				for _, r := range g.Filter(n.ID) {
					if len(r.CapGrant) > 0 && (len(r.DstPorts) > 0 || r.Protocols != nil) {
						t.Fatalf("node %d: capability rule with ports or protocols: %+v", n.ID, r)
					}
				}
			}
		})
	}
}

// TestGrantAppValuesCarried: the values reach the node as written
// (compact JSON), unknown capabilities included.
func TestGrantAppValuesCarried(t *testing.T) {
	p := mustParse(t, "{"+compileHeader+`"grants": [{"src": ["*"], "dst": ["tag:db"],
		"app": {"unknown.example/cap/z": [{"b": [1, 2], "a": "x"}, 7, null]}}]}`)
	g := NewGraph(p, t0, compileNodes()...)
	f := g.Filter(5)
	if len(f) != 1 || len(f[0].CapGrant) != 1 {
		t.Fatalf("filter = %+v, want one capability rule", f)
	}
	vals := f[0].CapGrant[0].CapMap["unknown.example/cap/z"]
	var got []string
	for _, v := range vals {
		got = append(got, string(v))
	}
	if want := []string{`{"b":[1,2],"a":"x"}`, "7", "null"}; !slices.Equal(got, want) {
		t.Fatalf("values = %q, want %q", got, want)
	}
}

// TestGrantAppIncremental: adding, changing and removing a source node
// updates the destination's capability rules and names it as affected;
// the result equals a graph built from scratch.
func TestGrantAppIncremental(t *testing.T) {
	p := mustParse(t, "{"+compileHeader+`"grants": [
		{"src": ["group:eng"], "dst": ["tag:db"], "app": {"example.com/cap/x": []}},
		{"src": ["group:eng"], "dst": ["autogroup:self"], "app": {"example.com/cap/s": []}}]}`)
	all := compileNodes()
	byID := func(id wire.NodeID) Node {
		for _, n := range all {
			if n.ID == id {
				return n
			}
		}
		t.Fatalf("no node %d", id)
		return Node{}
	}
	ids := []wire.NodeID{1, 2, 3, 4, 5, 6, 7}
	g := NewGraph(p, t0, byID(5), byID(6), byID(7))
	check := func(step string, nodes ...Node) {
		t.Helper()
		want := takeSnapshot(NewGraph(p, t0, nodes...), ids)
		if got := takeSnapshot(g, ids); !maps.Equal(got, want) {
			t.Fatalf("%s: incremental\n%v\nfrom scratch\n%v", step, got, want)
		}
	}
	affects := func(step string, aff []wire.NodeID, want ...wire.NodeID) {
		t.Helper()
		for _, id := range want {
			if !slices.Contains(aff, id) {
				t.Fatalf("%s: affected = %v, want it to include %d", step, aff, id)
			}
		}
	}
	affects("add ann", g.Upsert(byID(1)), 5)
	check("add ann", byID(5), byID(6), byID(7), byID(1))
	affects("add ann's second", g.Upsert(byID(2)), 5, 1)
	check("add ann's second", byID(5), byID(6), byID(7), byID(1), byID(2))
	moved := byID(2)
	moved.Addresses = addrs(9, false)
	affects("readdress", g.Upsert(moved), 5, 1)
	check("readdress", byID(5), byID(6), byID(7), byID(1), moved)
	affects("remove", g.Remove(1), 5, 2)
	check("remove", byID(5), byID(6), byID(7), moved)
	tagged := moved
	tagged.User, tagged.Tags = "", []string{"tag:web"}
	affects("tagged", g.Upsert(tagged), 5)
	check("tagged", byID(5), byID(6), byID(7), tagged)
	if f := g.Filter(5); len(f) != 0 {
		t.Fatalf("no source left, but tag:db has %v", renderFilter(f))
	}
}

// TestGrantAppSetPolicy: a policy change that only changes a
// capability's values (or its name) affects the destination node, so it
// receives the new capabilities.
func TestGrantAppSetPolicy(t *testing.T) {
	grant := func(app string) *Policy {
		return mustParse(t, "{"+compileHeader+`"grants": [{"src": ["group:eng"], "dst": ["tag:db"], "app": `+app+`}]}`)
	}
	g := NewGraph(grant(`{"example.com/cap/x": [1]}`), t0, compileNodes()...)
	for _, next := range []string{`{"example.com/cap/x": [2]}`, `{"example.com/cap/y": [2]}`, `{"example.com/cap/y": [2, 3]}`} {
		if aff := g.SetPolicy(grant(next)); !slices.Contains(aff, 5) {
			t.Fatalf("to %s: affected = %v, want it to include 5", next, aff)
		}
	}
	if aff := g.SetPolicy(grant(`{"example.com/cap/y": [2, 3]}`)); len(aff) != 0 {
		t.Fatalf("the same policy again affects %v", aff)
	}
}
