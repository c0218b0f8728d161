package policy

import (
	"slices"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// compileHeader is shared by the compile cases; each adds its acls.
const compileHeader = `
	"groups": {
		"group:eng": ["ann@example.com", "bob@example.com"],
		"group:contractors": [],
	},
	"hosts": {
		"dbhost": "100.64.0.5",
		"office": "10.1.0.0/16",
		"web6":   "fd7a:115c:a1e0::6",
	},
	"tagOwners": {"tag:db": ["group:eng"], "tag:web": [], "tag:ci": ["tag:web"]},
	"postures": {"posture:mac": ["node:os == 'macos'", "node:osVersion >= '15.0'"]},
`

// compileNodes: 1, 2 ann (2 is linux); 3 bob; 4 carol (admin, IdP group
// eng); 5 tag:db; 6 tag:web (with IPv6); 7 dave (IdP group contractors).
func compileNodes() []Node {
	ann1 := userNode(1, "ann@example.com")
	ann1.Attrs = map[string]string{"node:os": "macos", "node:osVersion": "15.1"}
	ann2 := userNode(2, "Ann@Example.com")
	ann2.Attrs = map[string]string{"node:os": "linux"}
	carol := userNode(4, "carol@example.com")
	carol.Admin = true
	carol.Groups = []string{"eng"}
	carol.MFAAt = t0.Add(-time.Hour)
	web := tagNode(6, "tag:web")
	web.Addresses = addrs(6, true)
	dave := userNode(7, "dave@example.com")
	dave.Groups = []string{"group:contractors"}
	return []Node{ann1, ann2, userNode(3, "bob@example.com"), carol, tagNode(5, "tag:db"), web, dave}
}

func TestCompile(t *testing.T) {
	tests := []struct {
		name    string
		acls    string
		filters map[wire.NodeID][]string // nodes not listed: empty filter
		peers   map[wire.NodeID][]wire.NodeID
	}{
		{
			name:    "user to tag, logins case-insensitive",
			acls:    `{"action": "accept", "src": ["ann@example.com"], "dst": ["tag:db:22"]}`,
			filters: map[wire.NodeID][]string{5: {"100.64.0.1,100.64.0.2 -> 100.64.0.5:22"}},
			peers:   map[wire.NodeID][]wire.NodeID{1: {5}, 2: {5}, 5: {1, 2}},
		},
		{
			name: "group from file and identity provider, port list",
			acls: `{"action": "accept", "src": ["group:eng"], "dst": ["tag:web:22,80-90,443"]}`,
			filters: map[wire.NodeID][]string{6: {"100.64.0.1,100.64.0.2,100.64.0.3,100.64.0.4 -> " +
				"100.64.0.6:22,100.64.0.6:80-90,100.64.0.6:443,fd7a:115c:a1e0::6:22,fd7a:115c:a1e0::6:80-90,fd7a:115c:a1e0::6:443"}},
			peers: map[wire.NodeID][]wire.NodeID{1: {6}, 2: {6}, 3: {6}, 4: {6}, 6: {1, 2, 3, 4}},
		},
		{
			name:    "empty group filled by the identity provider",
			acls:    `{"action": "accept", "src": ["group:contractors"], "dst": ["dbhost:8000-8999"]}`,
			filters: map[wire.NodeID][]string{5: {"100.64.0.7 -> 100.64.0.5:8000-8999"}},
			peers:   map[wire.NodeID][]wire.NodeID{5: {7}, 7: {5}},
		},
		{
			name: "star to star",
			acls: `{"action": "accept", "src": ["*"], "dst": ["*:*"]}`,
			filters: map[wire.NodeID][]string{
				1: {"100.64.0.0/11,100.96.0.0/12,100.112.0.0/15,100.114.0.0/16,100.115.0.0/18,100.115.64.0/20,100.115.80.0/21,100.115.88.0/22,100.115.94.0/23,100.115.96.0/19,100.115.128.0/17,100.116.0.0/14,100.120.0.0/13,fd7a:115c:a1e0::/48 -> 100.64.0.1:*"}, 2: {"100.64.0.0/11,100.96.0.0/12,100.112.0.0/15,100.114.0.0/16,100.115.0.0/18,100.115.64.0/20,100.115.80.0/21,100.115.88.0/22,100.115.94.0/23,100.115.96.0/19,100.115.128.0/17,100.116.0.0/14,100.120.0.0/13,fd7a:115c:a1e0::/48 -> 100.64.0.2:*"},
				3: {"100.64.0.0/11,100.96.0.0/12,100.112.0.0/15,100.114.0.0/16,100.115.0.0/18,100.115.64.0/20,100.115.80.0/21,100.115.88.0/22,100.115.94.0/23,100.115.96.0/19,100.115.128.0/17,100.116.0.0/14,100.120.0.0/13,fd7a:115c:a1e0::/48 -> 100.64.0.3:*"}, 4: {"100.64.0.0/11,100.96.0.0/12,100.112.0.0/15,100.114.0.0/16,100.115.0.0/18,100.115.64.0/20,100.115.80.0/21,100.115.88.0/22,100.115.94.0/23,100.115.96.0/19,100.115.128.0/17,100.116.0.0/14,100.120.0.0/13,fd7a:115c:a1e0::/48 -> 100.64.0.4:*"},
				5: {"100.64.0.0/11,100.96.0.0/12,100.112.0.0/15,100.114.0.0/16,100.115.0.0/18,100.115.64.0/20,100.115.80.0/21,100.115.88.0/22,100.115.94.0/23,100.115.96.0/19,100.115.128.0/17,100.116.0.0/14,100.120.0.0/13,fd7a:115c:a1e0::/48 -> 100.64.0.5:*"}, 6: {"100.64.0.0/11,100.96.0.0/12,100.112.0.0/15,100.114.0.0/16,100.115.0.0/18,100.115.64.0/20,100.115.80.0/21,100.115.88.0/22,100.115.94.0/23,100.115.96.0/19,100.115.128.0/17,100.116.0.0/14,100.120.0.0/13,fd7a:115c:a1e0::/48 -> 100.64.0.6:*,fd7a:115c:a1e0::6:*"},
				7: {"100.64.0.0/11,100.96.0.0/12,100.112.0.0/15,100.114.0.0/16,100.115.0.0/18,100.115.64.0/20,100.115.80.0/21,100.115.88.0/22,100.115.94.0/23,100.115.96.0/19,100.115.128.0/17,100.116.0.0/14,100.120.0.0/13,fd7a:115c:a1e0::/48 -> 100.64.0.7:*"},
			},
			peers: map[wire.NodeID][]wire.NodeID{
				1: {2, 3, 4, 5, 6, 7}, 2: {1, 3, 4, 5, 6, 7}, 3: {1, 2, 4, 5, 6, 7}, 4: {1, 2, 3, 5, 6, 7},
				5: {1, 2, 3, 4, 6, 7}, 6: {1, 2, 3, 4, 5, 7}, 7: {1, 2, 3, 4, 5, 6},
			},
		},
		{
			name: "autogroups member, tagged, admin",
			acls: `{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:web:443"]},
				{"action": "accept", "src": ["autogroup:tagged"], "dst": ["tag:db:5432"]},
				{"action": "accept", "src": ["autogroup:admin"], "dst": ["autogroup:tagged:22"]}`,
			filters: map[wire.NodeID][]string{
				5: {"100.64.0.5,100.64.0.6,fd7a:115c:a1e0::6 -> 100.64.0.5:5432", "100.64.0.4 -> 100.64.0.5:22"},
				6: {"100.64.0.1,100.64.0.2,100.64.0.3,100.64.0.4,100.64.0.7 -> 100.64.0.6:443,fd7a:115c:a1e0::6:443", "100.64.0.4 -> 100.64.0.6:22,fd7a:115c:a1e0::6:22"},
			},
			peers: map[wire.NodeID][]wire.NodeID{1: {6}, 2: {6}, 3: {6}, 4: {5, 6}, 5: {4, 6}, 6: {1, 2, 3, 4, 5, 7}, 7: {6}},
		},
		{
			name: "autogroup:self",
			acls: `{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:22"]}`,
			filters: map[wire.NodeID][]string{
				1: {"100.64.0.1,100.64.0.2 -> 100.64.0.1:22"}, 2: {"100.64.0.1,100.64.0.2 -> 100.64.0.2:22"},
				3: {"100.64.0.3 -> 100.64.0.3:22"}, 4: {"100.64.0.4 -> 100.64.0.4:22"}, 7: {"100.64.0.7 -> 100.64.0.7:22"},
			},
			peers: map[wire.NodeID][]wire.NodeID{1: {2}, 2: {1}},
		},
		{
			name: "autogroup:self beside another destination in one rule",
			acls: `{"action": "accept", "src": ["group:eng"], "dst": ["autogroup:self:*", "tag:db:5432"]}`,
			filters: map[wire.NodeID][]string{
				1: {"100.64.0.1,100.64.0.2 -> 100.64.0.1:*"}, 2: {"100.64.0.1,100.64.0.2 -> 100.64.0.2:*"},
				3: {"100.64.0.3 -> 100.64.0.3:*"}, 4: {"100.64.0.4 -> 100.64.0.4:*"},
				5: {"100.64.0.1,100.64.0.2,100.64.0.3,100.64.0.4 -> 100.64.0.5:5432"},
			},
			peers: map[wire.NodeID][]wire.NodeID{1: {2, 5}, 2: {1, 5}, 3: {5}, 4: {5}, 5: {1, 2, 3, 4}},
		},
		{
			name: "CIDR destination selects only addresses inside it",
			acls: `{"action": "accept", "src": ["tag:db"], "dst": ["100.64.0.0/30:22", "fd7a:115c:a1e0::/48:80"]}`,
			filters: map[wire.NodeID][]string{
				1: {"100.64.0.5 -> 100.64.0.1:22"}, 2: {"100.64.0.5 -> 100.64.0.2:22"}, 3: {"100.64.0.5 -> 100.64.0.3:22"},
				6: {"100.64.0.5 -> fd7a:115c:a1e0::6:80"},
			},
			peers: map[wire.NodeID][]wire.NodeID{1: {5}, 2: {5}, 3: {5}, 5: {1, 2, 3, 6}, 6: {5}},
		},
		{
			name: "IPv6 destinations in both spellings, host alias",
			acls: `{"action": "accept", "src": ["bob@example.com"], "dst": ["[fd7a:115c:a1e0::6]:80", "fd7a:115c:a1e0::6:443", "web6:8080"]}`,
			filters: map[wire.NodeID][]string{
				6: {"100.64.0.3 -> fd7a:115c:a1e0::6:80,fd7a:115c:a1e0::6:443,fd7a:115c:a1e0::6:8080"},
			},
			peers: map[wire.NodeID][]wire.NodeID{3: {6}, 6: {3}},
		},
		{
			name: "literal sources: a node's address, a CIDR outside the mesh",
			acls: `{"action": "accept", "src": ["100.64.0.3", "office", "fd7a:115c:a1e0::6"], "dst": ["tag:db:9100"]}`,
			filters: map[wire.NodeID][]string{
				5: {"10.1.0.0/16,100.64.0.3,fd7a:115c:a1e0::6 -> 100.64.0.5:9100"},
			},
			peers: map[wire.NodeID][]wire.NodeID{3: {5}, 5: {3, 6}, 6: {5}},
		},
		{
			name: "protocols by name and number",
			acls: `{"action": "accept", "src": ["tag:web"], "dst": ["tag:db:53"], "proto": "udp"},
				{"action": "accept", "src": ["tag:web"], "dst": ["tag:db:*"], "proto": "icmp"},
				{"action": "accept", "src": ["tag:web"], "dst": ["tag:db:*"], "proto": "47"},
				{"action": "accept", "src": ["tag:web"], "dst": ["tag:db:9"], "proto": "SCTP"}`,
			filters: map[wire.NodeID][]string{
				5: {
					"100.64.0.6,fd7a:115c:a1e0::6 -> 100.64.0.5:53 [17]",
					"100.64.0.6,fd7a:115c:a1e0::6 -> 100.64.0.5:* [1]",
					"100.64.0.6,fd7a:115c:a1e0::6 -> 100.64.0.5:* [47]",
					"100.64.0.6,fd7a:115c:a1e0::6 -> 100.64.0.5:9 [132]",
				},
			},
			peers: map[wire.NodeID][]wire.NodeID{5: {6}, 6: {5}},
		},
		{
			name: "posture: any listed posture; literal sources select only nodes",
			acls: `{"action": "accept", "src": ["group:eng", "10.0.0.0/8"], "dst": ["tag:db:5432"], "srcPosture": ["posture:mac"]}`,
			filters: map[wire.NodeID][]string{
				5: {"100.64.0.1 -> 100.64.0.5:5432"},
			},
			peers: map[wire.NodeID][]wire.NodeID{1: {5}, 5: {1}},
		},
		{
			name:    "mfa: fresh enough",
			acls:    `{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:db:22"], "mfa": "2h"}`,
			filters: map[wire.NodeID][]string{5: {"100.64.0.4 -> 100.64.0.5:22"}},
			peers:   map[wire.NodeID][]wire.NodeID{4: {5}, 5: {4}},
		},
		{
			name: "mfa: too old",
			acls: `{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:db:22"], "mfa": "30m"}`,
		},
		{
			name:    "time window open (Wed 10:00 in Tokyo)",
			acls:    `{"action": "accept", "src": ["group:contractors"], "dst": ["tag:web:443"], "when": {"days": ["Mon", "Wed"], "hours": "09:00-18:00", "tz": "Asia/Tokyo"}}`,
			filters: map[wire.NodeID][]string{6: {"100.64.0.7 -> 100.64.0.6:443,fd7a:115c:a1e0::6:443"}},
			peers:   map[wire.NodeID][]wire.NodeID{6: {7}, 7: {6}},
		},
		{
			name: "time window closed",
			acls: `{"action": "accept", "src": ["group:contractors"], "dst": ["tag:web:443"], "when": {"days": ["Tue"], "tz": "Asia/Tokyo"}}`,
		},
		{
			name: "one filter rule per acls rule, in order",
			acls: `{"action": "accept", "src": ["tag:web"], "dst": ["tag:db:5432", "dbhost:22"]},
				{"action": "accept", "src": ["bob@example.com"], "dst": ["tag:db:5432"]}`,
			filters: map[wire.NodeID][]string{5: {
				"100.64.0.6,fd7a:115c:a1e0::6 -> 100.64.0.5:22,100.64.0.5:5432",
				"100.64.0.3 -> 100.64.0.5:5432",
			}},
			peers: map[wire.NodeID][]wire.NodeID{3: {5}, 5: {3, 6}, 6: {5}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustParse(t, "{"+compileHeader+`"acls": [`+tc.acls+"]}")
			nodes := compileNodes()
			g := NewGraph(p, t0, nodes...)
			for _, n := range nodes {
				got := renderFilter(g.Filter(n.ID))
				if want := tc.filters[n.ID]; !slices.Equal(got, want) {
					t.Errorf("node %d filter:\n got %q\nwant %q", n.ID, got, want)
				}
				if got, want := peerList(g, n.ID), tc.peers[n.ID]; !slices.Equal(got, want) {
					t.Errorf("node %d peers: got %v, want %v", n.ID, got, want)
				}
			}
			// The same result, node by node.
			g2 := NewGraph(p, t0)
			for _, n := range nodes {
				g2.Upsert(n)
			}
			ids := nodeIDs(nodes)
			if a, b := takeSnapshot(g, ids), takeSnapshot(g2, ids); !mapsEqual(a, b) {
				t.Errorf("Upsert one by one differs from NewGraph:\n%v\n%v", a, b)
			}
		})
	}
}

func nodeIDs(nodes []Node) []wire.NodeID {
	var ids []wire.NodeID
	for _, n := range nodes {
		ids = append(ids, n.ID)
	}
	return ids
}

func mapsEqual(a, b snapshot) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestFilterSharesSrcPrefixes checks that destination nodes share one
// SrcPrefixes slice per rule, and that a slice handed out never changes.
func TestFilterSharesSrcPrefixes(t *testing.T) {
	p := mustParse(t, `{"tagOwners": {"tag:db": []}, "acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:db:5432"]}]}`)
	g := NewGraph(p, t0, tagNode(10, "tag:db"), tagNode(11, "tag:db"), userNode(1, "ann@example.com"))
	a, b := g.Filter(10), g.Filter(11)
	if &a[0].SrcPrefixes[0] != &b[0].SrcPrefixes[0] {
		t.Error("SrcPrefixes not shared between destinations")
	}
	before := renderFilter(a)
	g.Upsert(userNode(2, "bob@example.com"))
	if after := renderFilter(a); !slices.Equal(before, after) {
		t.Errorf("a handed-out filter changed: %v -> %v", before, after)
	}
	if got := renderFilter(g.Filter(10)); got[0] != "100.64.0.1,100.64.0.2 -> 100.64.0.5:5432" && got[0] != "100.64.0.1,100.64.0.2 -> 100.64.0.10:5432" {
		t.Errorf("new filter %v", got)
	}
}
