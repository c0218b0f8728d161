package policy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// denialPolicy has posture-gated rules of every kind Denials must tell
// apart: several postures, a version bound, a time window, MFA, a grant,
// autogroup:self, a destination no node has, and an ungated rule.
const denialPolicy = `{
	"groups": {"group:eng": ["ann@example.com", "bob@example.com"]},
	"tagOwners": {"tag:db": [], "tag:web": [], "tag:none": [], "tag:ci": []},
	"postures": {
		"posture:managed": ["node:diskEncrypted == true", "custom:mdmCompliant == true"],
		"posture:mac": ["node:os == 'macos'", "node:osVersion >= '15.0'"],
		"posture:linux": ["node:os == 'linux'", "node:kernelVersion >= '6.1'"],
	},
	"acls": [
		{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5432"], "srcPosture": ["posture:managed"]},
		{"action": "accept", "src": ["group:eng"], "dst": ["tag:web:443"], "srcPosture": ["posture:mac", "posture:linux"]},
		{"action": "accept", "src": ["group:eng"], "dst": ["tag:none:22"], "srcPosture": ["posture:managed"]},
		{"action": "accept", "src": ["group:eng"], "dst": ["tag:web:80"]},
		{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:22"], "srcPosture": ["posture:managed"], "mfa": "1h"},
		{"action": "accept", "src": ["group:eng"], "dst": ["tag:web:8080"], "srcPosture": ["posture:managed"], "when": {"days": ["Sat"]}},
	],
	"grants": [
		{"src": ["bob@example.com"], "dst": ["tag:db"], "ip": ["tcp:9000"], "srcPosture": ["posture:mac"]},
		{"src": ["bob@example.com"], "dst": ["autogroup:self"], "ip": ["tcp:22"], "srcPosture": ["posture:mac"]},
	],
}`

func denialStrings(ds []wire.PostureDenial) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Destination+" needs "+d.Posture+": "+d.Reason)
	}
	return out
}

func TestDenials(t *testing.T) {
	p := mustParse(t, denialPolicy)
	mfaFresh := t0.Add(-10 * time.Minute) // t0 is a Wednesday: the "Sat" rule is off
	tests := []struct {
		name  string
		node  Node
		want  []string
		unset bool // the node is not in the graph
	}{
		{
			name: "nothing reported: every gated rule, first failing condition of each posture",
			node: Node{User: "ann@example.com", MFAAt: mfaFresh},
			want: []string{
				"tag:db:22 needs posture:managed: node:diskEncrypted is not reported",
				"tag:db:5432 needs posture:managed: node:diskEncrypted is not reported",
				"tag:web:443 needs posture:linux: node:os is not reported",
				"tag:web:443 needs posture:mac: node:os is not reported",
			},
		},
		{
			name: "wrong value; MFA missing: the mfa rule is not a posture-only denial",
			node: Node{User: "ann@example.com", Attrs: map[string]string{"node:diskEncrypted": "false", "node:os": "linux", "node:kernelVersion": "6.1.0"}},
			want: []string{"tag:db:5432 needs posture:managed: node:diskEncrypted is false (needs == true)"},
		},
		{
			name: "second condition of a posture, custom attribute not set",
			node: Node{User: "ann@example.com", Attrs: map[string]string{"node:diskEncrypted": "true", "node:os": "macos", "node:osVersion": "15.1"}},
			want: []string{"tag:db:5432 needs posture:managed: custom:mdmCompliant is not set"},
		},
		{
			name: "version comparison: 14.6 < 15.0, and 5.15 < 6.1",
			node: Node{User: "bob@example.com", Attrs: map[string]string{"node:diskEncrypted": "true", "custom:mdmCompliant": "true", "node:os": "macos", "node:osVersion": "14.6"}},
			want: []string{
				"autogroup:self needs posture:mac: node:osVersion is \"14.6\" (needs >= \"15.0\")",
				"tag:db needs posture:mac: node:osVersion is \"14.6\" (needs >= \"15.0\")",
				"tag:web:443 needs posture:linux: node:os is \"macos\" (needs == \"linux\")",
				"tag:web:443 needs posture:mac: node:osVersion is \"14.6\" (needs >= \"15.0\")",
			},
		},
		{
			name: "one of several postures holds: no denial for that rule",
			node: Node{User: "ann@example.com", Attrs: map[string]string{"node:diskEncrypted": "true", "custom:mdmCompliant": "true", "node:os": "macos", "node:osVersion": "15.10"}},
		},
		{
			name: "not a source of any gated rule",
			node: Node{User: "carol@example.com"},
		},
		{
			name: "a tagged node no rule selects",
			node: Node{Tags: []string{"tag:ci"}},
		},
		{
			name:  "unknown node",
			unset: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewGraph(p, t0, tagNode(10, "tag:db"), tagNode(11, "tag:web"))
			tc.node.ID = 1
			tc.node.Addresses = addrs(1, false)
			if !tc.unset {
				g.Upsert(tc.node)
			}
			got := denialStrings(g.Denials(1))
			if !slices.Equal(got, tc.want) {
				t.Errorf("denials:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestDenialsFollowChanges checks that PostureChanged names the nodes
// whose denials change, and only those, as the node, its destinations,
// the clock and the policy change.
func TestDenialsFollowChanges(t *testing.T) {
	p := mustParse(t, denialPolicy)
	ann := userNode(1, "ann@example.com")
	ann.Attrs = map[string]string{"node:diskEncrypted": "false", "custom:mdmCompliant": "true", "node:os": "macos", "node:osVersion": "15.1"}
	bob := userNode(2, "bob@example.com")
	bob.Attrs = map[string]string{"node:diskEncrypted": "true", "custom:mdmCompliant": "true", "node:os": "macos", "node:osVersion": "15.1"}
	carol := userNode(3, "carol@example.com")
	g := NewGraph(p, t0, ann, bob, carol)
	g.PostureChanged()
	want := func(step string, id wire.NodeID, denials ...string) {
		t.Helper()
		if got := denialStrings(g.Denials(id)); !slices.Equal(got, denials) {
			t.Errorf("%s: node %d denials %q, want %q", step, id, got, denials)
		}
	}
	changed := func(step string, ids ...wire.NodeID) {
		t.Helper()
		if got := sorted(g.PostureChanged()); !slices.Equal(got, ids) {
			t.Errorf("%s: PostureChanged %v, want %v", step, got, ids)
		}
	}

	// No tag:db node yet: nothing to be denied.
	want("no destination", 1)
	g.Upsert(tagNode(10, "tag:db"))
	// ann now has a denial; the db node itself changed; bob (good posture,
	// no MFA) now fails tag:db:22 only on MFA freshness (MFADenials).
	changed("db joins", 1, 2, 10)
	want("db joins", 1, "tag:db:5432 needs posture:managed: node:diskEncrypted is false (needs == true)")
	want("db joins", 2)

	// A second db node changes nothing for ann.
	g.Upsert(tagNode(11, "tag:db"))
	changed("second db", 11)

	// Ann fixes her disk.
	ann.Attrs["node:diskEncrypted"] = "true"
	g.Upsert(ann)
	changed("ann fixed", 1)
	want("ann fixed", 1)

	// ...and breaks it again; bob and carol hear nothing.
	ann.Attrs["node:diskEncrypted"] = "false"
	g.Upsert(ann)
	changed("ann broke", 1)

	// The Saturday rule opens: ann is denied tag:web:8080 only once a
	// tag:web node exists, and then only on Saturdays.
	g.Upsert(tagNode(12, "tag:web"))
	changed("web joins", 1, 12)
	sat := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	g.Advance(sat)
	changed("saturday", 1)
	want("saturday", 1,
		"tag:db:5432 needs posture:managed: node:diskEncrypted is false (needs == true)",
		"tag:web:8080 needs posture:managed: node:diskEncrypted is false (needs == true)")

	// The destinations leave.
	g.Remove(10)
	changed("one db leaves") // ann still has db 11
	g.Remove(11)
	changed("last db leaves", 1, 2)
	want("last db leaves", 1, "tag:web:8080 needs posture:managed: node:diskEncrypted is false (needs == true)")

	// A policy change may change anyone's.
	g.SetPolicy(mustParse(t, `{"acls": []}`))
	changed("new policy", 1, 2, 3, 12)
	want("new policy", 1)
}

// TestDenialsCostFollowsGatedRules checks that a node's denials are
// computed from the gated rules that select it, not from a pass over
// the policy: a node in one group of many sees only its group's rules.
func TestDenialsCostFollowsGatedRules(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"postures": {"posture:enc": ["node:diskEncrypted == true"]}, "tagOwners": {"tag:db": []}, "groups": {`)
	for i := range 200 {
		fmt.Fprintf(&b, `"group:g%d": [],`, i)
	}
	b.WriteString(`}, "acls": [`)
	for i := range 200 {
		fmt.Fprintf(&b, `{"action": "accept", "src": ["group:g%d"], "dst": ["tag:db:%d"], "srcPosture": ["posture:enc"]},`, i, 1000+i)
	}
	b.WriteString(`]}`)
	g := NewGraph(mustParse(t, b.String()), t0, tagNode(10, "tag:db"))
	n := userNode(1, "ann@example.com")
	n.Groups = []string{"g7"}
	g.Upsert(n)
	slot := g.slots[1]
	if got := g.nodes[slot].gatedRules; !slices.Equal(got, []int32{7}) {
		t.Fatalf("gated rules %v, want [7]", got)
	}
	if got := denialStrings(g.Denials(1)); !slices.Equal(got, []string{"tag:db:1007 needs posture:enc: node:diskEncrypted is not reported"}) {
		t.Errorf("denials %q", got)
	}
}
