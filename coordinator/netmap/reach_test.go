package netmap

import (
	"slices"
	"strconv"
	"testing"

	"github.com/warrenmesh/warren/internal/wire"
)

// TestReachable checks what nodes may reach, from their peers' filters,
// against tables of policy → expected (peer, ports, rule).
func TestReachable(t *testing.T) {
	type reach struct {
		peer  wire.NodeID
		ports string
		rule  string
	}
	for _, tc := range []struct {
		name   string
		policy string
		from   wire.NodeID
		want   []reach
	}{
		{"self and tags", testPolicy, 1, []reach{{2, "100.64.0.2/32:0-65535", "acls[0]"}}},
		{"a tagged node reaches its tag", testPolicy, 3, []reach{{4, "100.64.0.4/32:0-65535", "acls[1]"}}},
		{"one way only", `{"tagOwners": {"tag:db": []}, "acls": [{"action": "accept", "src": ["u1@example.com"], "dst": ["tag:db:5432,22"]}]}`,
			1, []reach{{3, "100.64.0.3/32:22-22", "acls[0]"}, {3, "100.64.0.3/32:5432-5432", "acls[0]"}, {4, "100.64.0.4/32:22-22", "acls[0]"}, {4, "100.64.0.4/32:5432-5432", "acls[0]"}}},
		{"the destination reaches nothing back", `{"tagOwners": {"tag:db": []}, "acls": [{"action": "accept", "src": ["u1@example.com"], "dst": ["tag:db:5432"]}]}`,
			3, nil},
		{"an unknown node", testPolicy, 99, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, Config{Policy: mustPolicy(t, tc.policy)})
			e.Upsert(testNode(1, 1))
			e.Upsert(testNode(2, 1))
			e.Upsert(testNode(3, 2, "tag:db"))
			e.Upsert(testNode(4, 2, "tag:db"))
			var got []reach
			for _, r := range e.Reachable(tc.from) {
				for _, p := range r.Ports {
					got = append(got, reach{r.Peer, p.Prefix.String() + ":" + strconv.Itoa(int(p.First)) + "-" + strconv.Itoa(int(p.Last)), r.Rule})
				}
			}
			slices.SortFunc(got, func(a, b reach) int {
				if a.peer != b.peer {
					return int(a.peer - b.peer)
				}
				if a.ports < b.ports {
					return -1
				}
				return 1
			})
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Reachable(%d) = %v, want %v", tc.from, got, tc.want)
			}
		})
	}
}
