package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// nodePageReference is ListNodePage the slow way, from ListNodes: the
// oracle TestListNodePage checks the query against.
func nodePageReference(nodes []Node, logins map[UserID]string, f NodePageFilter) ([]Node, int) {
	var out []Node
	for _, n := range nodes {
		m := f.Match
		match := m == "" || strings.Contains(n.Name, m) || strings.Contains(n.Hostname, m) || n.IPv4.String() == m ||
			n.IPv6.String() == m || (strings.Contains(logins[n.UserID], m)) || slices.Contains(n.Tags, m)
		if match && (f.User == 0 || n.UserID == f.User) {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b Node) int { return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID)) })
	total := len(out)
	limit := cmp.Or(f.Limit, defaultNodePage)
	lo := min(f.Offset, len(out))
	return out[lo:min(lo+limit, len(out))], total
}

// TestListNodePage checks the page query against the reference over
// filters (substrings, tags, addresses, logins, a user) and offsets.
func TestListNodePage(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, _ := bk.openTest(t)
		ctx := context.Background()
		logins := map[UserID]string{}
		var users []User
		for _, name := range []string{"ann@example.com", "bob@example.org"} {
			u, err := s.CreateUser(ctx, User{Name: name, Role: RoleMember})
			must(t, err)
			users = append(users, u)
			logins[u.ID] = u.Name
		}
		for i := range 57 {
			n := newNode(fmt.Sprintf("host-%02d", (i*37)%57), users[i%2].ID)
			switch i % 5 {
			case 0:
				n.Tags = []string{"tag:web"}
			case 1:
				n.Tags = []string{"tag:db", "tag:web-admin"}
			}
			_, err := s.CreateNode(ctx, n)
			must(t, err)
		}
		nodes, err := s.ListNodes(ctx)
		must(t, err)
		for _, f := range []NodePageFilter{
			{}, {Match: "host-1"}, {Match: "tag:web"}, {Match: "tag:db"}, {Match: "tag:"}, {Match: "example.org"},
			{Match: "ann@"}, {Match: nodes[7].IPv4.String()}, {Match: nodes[9].IPv6.String()}, {Match: "nothing"},
			{Match: `"`}, {Match: "%"}, {User: users[1].ID}, {User: users[0].ID, Match: "tag:web"},
		} {
			for _, page := range []struct{ off, lim int }{{0, 0}, {0, 10}, {10, 10}, {50, 10}, {56, 5}, {100, 10}} {
				f.Offset, f.Limit = page.off, page.lim
				got, total, err := s.ListNodePage(ctx, f)
				must(t, err)
				want, wantTotal := nodePageReference(nodes, logins, f)
				ids := func(ns []Node) []NodeID {
					out := []NodeID{}
					for _, n := range ns {
						out = append(out, n.ID)
					}
					return out
				}
				if total != wantTotal || !slices.Equal(ids(got), ids(want)) {
					t.Errorf("%+v: %d in all, page %v; want %d, %v", f, total, ids(got), wantTotal, ids(want))
				}
			}
		}
	})
}
