package netmap

import (
	"reflect"
	"testing"
)

// TestPreviewPolicy checks which nodes a candidate policy would change,
// for tables of policies, and that previewing changes nothing in force.
func TestPreviewPolicy(t *testing.T) {
	const self = `{"acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]}]}`
	for _, tc := range []struct {
		name, candidate string
		want            []PolicyChange
	}{
		{"same policy", self, nil},
		{"u1 reaches tag:db", `{"tagOwners": {"tag:db": ["u1@example.com"]}, "acls": [
			{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]},
			{"action": "accept", "src": ["u1@example.com"], "dst": ["tag:db:5432"]}]}`,
			[]PolicyChange{
				{Node: "n1", PeersAdded: []string{"n3"}, FilterBefore: 1, FilterAfter: 1},
				{Node: "n3", PeersAdded: []string{"n1"}, FilterBefore: 0, FilterAfter: 1, FilterChanged: true},
			}},
		{"nobody reaches anything", `{"acls": []}`,
			[]PolicyChange{
				{Node: "n1", FilterBefore: 1, FilterAfter: 0, FilterChanged: true},
				{Node: "n2", FilterBefore: 1, FilterAfter: 0, FilterChanged: true},
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, Config{Policy: mustPolicy(t, self)})
			e.Upsert(testNode(1, 1))
			e.Upsert(testNode(2, 2))
			e.Upsert(testNode(3, 1, "tag:db"))
			s, err := e.Subscribe(1)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			next(t, s) // the full map
			got := e.PreviewPolicy(mustPolicy(t, tc.candidate))
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("preview:\n%+v\nwant\n%+v", got, tc.want)
			}
			nothingQueued(t, s)
		})
	}
}
