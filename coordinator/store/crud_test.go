package store

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/key"
)

// seed is a small store content shared by the table tests below.
type seed struct {
	ann, bob User
	a, b     Node
	authKey  AuthKey
	apiKey   APIKey
}

func seedStore(t *testing.T, s Store) seed {
	t.Helper()
	ctx := context.Background()
	var sd seed
	var err error
	sd.ann, err = s.CreateUser(ctx, User{Name: "ann@example.com", Role: RoleAdmin})
	must(t, err)
	sd.bob, err = s.CreateUser(ctx, User{Name: "bob@example.com", Role: RoleMember})
	must(t, err)
	sd.a, err = s.CreateNode(ctx, newNode("a", sd.ann.ID))
	must(t, err)
	sd.b, err = s.CreateNode(ctx, newNode("b", sd.bob.ID))
	must(t, err)
	sd.authKey, err = s.CreateAuthKey(ctx, AuthKey{Prefix: "wpk_1", Hash: []byte("auth-hash"), UserID: sd.ann.ID})
	must(t, err)
	sd.apiKey, err = s.CreateAPIKey(ctx, APIKey{Prefix: "wak_1", Hash: []byte("api-hash"), UserID: sd.ann.ID})
	must(t, err)
	return sd
}

func TestNotFound(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, _ := bk.openTest(t)
		ctx := context.Background()
		seedStore(t, s)
		ignore := func(_ any, err error) error { return err }
		for _, tc := range []struct {
			name string
			op   func() error
		}{
			{"GetUser", func() error { return ignore(s.GetUser(ctx, 99)) }},
			{"GetUserByName", func() error { return ignore(s.GetUserByName(ctx, "nobody")) }},
			{"UpdateUser", func() error { return s.UpdateUser(ctx, User{ID: 99, Name: "x", Role: RoleMember}) }},
			{"DeleteUser", func() error { return s.DeleteUser(ctx, 99) }},
			{"GetNode", func() error { return ignore(s.GetNode(ctx, 99)) }},
			{"GetNodeByMachineKey", func() error { return ignore(s.GetNodeByMachineKey(ctx, key.NewMachine().Public())) }},
			{"GetNodeByNodeKey", func() error { return ignore(s.GetNodeByNodeKey(ctx, key.NewNode().Public())) }},
			{"UpdateNode", func() error { n := newNode("x", 1); n.ID = 99; return ignore(s.UpdateNode(ctx, n)) }},
			{"DeleteNode", func() error { return s.DeleteNode(ctx, 99) }},
			{"GetAuthKey", func() error { return ignore(s.GetAuthKey(ctx, 99)) }},
			{"GetAuthKeyByHash", func() error { return ignore(s.GetAuthKeyByHash(ctx, []byte("nope"))) }},
			{"UpdateAuthKey", func() error { return s.UpdateAuthKey(ctx, AuthKey{ID: 99}) }},
			{"GetAPIKeyByHash", func() error { return ignore(s.GetAPIKeyByHash(ctx, []byte("nope"))) }},
			{"UpdateAPIKey", func() error { return s.UpdateAPIKey(ctx, APIKey{ID: 99}) }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if err := tc.op(); !errors.Is(err, ErrNotFound) {
					t.Fatalf("err = %v, want ErrNotFound", err)
				}
			})
		}
	})
}

func TestConflicts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, _ := bk.openTest(t)
		ctx := context.Background()
		sd := seedStore(t, s)
		ignore := func(_ any, err error) error { return err }
		for _, tc := range []struct {
			name string
			op   func() error
		}{
			{"user name", func() error { return ignore(s.CreateUser(ctx, User{Name: sd.ann.Name, Role: RoleMember})) }},
			{"rename user to a taken name", func() error {
				u := sd.bob
				u.Name = sd.ann.Name
				return s.UpdateUser(ctx, u)
			}},
			{"machine key", func() error {
				n := newNode("c", sd.ann.ID)
				n.MachineKey = sd.a.MachineKey
				return ignore(s.CreateNode(ctx, n))
			}},
			{"node key", func() error {
				n := newNode("c", sd.ann.ID)
				n.NodeKey = sd.a.NodeKey
				return ignore(s.CreateNode(ctx, n))
			}},
			{"IPv4", func() error {
				n := newNode("c", sd.ann.ID)
				n.IPv4 = sd.a.IPv4
				return ignore(s.CreateNode(ctx, n))
			}},
			{"IPv6", func() error {
				n := newNode("c", sd.ann.ID)
				n.IPv4, n.IPv6 = netip.MustParseAddr("100.64.9.9"), sd.a.IPv6
				return ignore(s.CreateNode(ctx, n))
			}},
			{"update to another node's key", func() error {
				n := sd.b
				n.NodeKey = sd.a.NodeKey
				return ignore(s.UpdateNode(ctx, n))
			}},
			{"auth key hash", func() error {
				return ignore(s.CreateAuthKey(ctx, AuthKey{Hash: sd.authKey.Hash, UserID: sd.bob.ID}))
			}},
			{"API key hash", func() error {
				return ignore(s.CreateAPIKey(ctx, APIKey{Hash: sd.apiKey.Hash, UserID: sd.bob.ID}))
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if err := tc.op(); !errors.Is(err, ErrConflict) {
					t.Fatalf("err = %v, want ErrConflict", err)
				}
			})
		}
		// A rejected write changed nothing.
		nodes, err := s.ListNodes(ctx)
		must(t, err)
		if len(nodes) != 2 || !reflect.DeepEqual(nodes[1], sd.b) {
			t.Fatalf("nodes after conflicts: %+v", nodes)
		}
	})
}

func TestCreateNodeRejects(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, _ := bk.openTest(t)
		ctx := context.Background()
		for _, tc := range []struct {
			name string
			edit func(n *Node)
		}{
			{"outside the IPv4 range", func(n *Node) { n.IPv4 = netip.MustParseAddr("10.0.0.1") }},
			{"IPv6 as IPv4", func(n *Node) { n.IPv4 = netip.MustParseAddr("fd7a:115c:a1e0::1") }},
			{"network address", func(n *Node) { n.IPv4 = netip.MustParseAddr("100.64.0.0") }},
			{"DNS resolver address", func(n *Node) { n.IPv4 = netip.MustParseAddr("100.100.100.100") }},
			{"outside the IPv6 range", func(n *Node) { n.IPv6 = netip.MustParseAddr("fd00::1") }},
			{"zero machine key", func(n *Node) { n.MachineKey = key.MachinePublic{} }},
			{"zero node key", func(n *Node) { n.NodeKey = key.NodePublic{} }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				n := newNode("x", 1)
				tc.edit(&n)
				if _, err := s.CreateNode(ctx, n); err == nil {
					t.Fatal("accepted")
				}
			})
		}
		if nodes, _ := s.ListNodes(ctx); len(nodes) != 0 {
			t.Fatalf("rejected nodes stored: %+v", nodes)
		}
	})
}

// utc returns n with its times in UTC, as the store returns them.
func utc(n Node) Node {
	n.Created, n.LastSeen, n.KeyExpiry = n.Created.UTC(), n.LastSeen.UTC(), n.KeyExpiry.UTC()
	return n
}

func TestNodeRoundTrip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, _ := bk.openTest(t)
		ctx := context.Background()
		want := Node{
			MachineKey: key.NewMachine().Public(),
			NodeKey:    key.NewNode().Public(),
			DiscoKey:   key.NewDisco().Public(),
			UserID:     7,
			Tags:       []string{"tag:db", "tag:prod"},
			Hostname:   "DB Server",
			Created:    time.Unix(1700000000, 123),
			LastSeen:   time.Unix(1700000100, 456),
			KeyExpiry:  time.Unix(1900000000, 0),
			Endpoints:  []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:41641"), netip.MustParseAddrPort("[2001:db8::1]:41641")},
			HomeRelay:  3,
			Ephemeral:  true,
			AuthKeyID:  5,
		}
		want.KeyLifetime = 720 * time.Hour
		got, err := s.CreateNode(ctx, want)
		must(t, err)
		want.ID, want.Name = got.ID, "db-server"
		want.IPv4, want.IPv6 = netip.MustParseAddr("100.64.0.1"), netip.MustParseAddr("fd7a:115c:a1e0::6440:1")
		want = utc(want)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("created\n got %+v\nwant %+v", got, want)
		}
		for name, get := range map[string]func() (Node, error){
			"id":          func() (Node, error) { return s.GetNode(ctx, want.ID) },
			"machine key": func() (Node, error) { return s.GetNodeByMachineKey(ctx, want.MachineKey) },
			"node key":    func() (Node, error) { return s.GetNodeByNodeKey(ctx, want.NodeKey) },
		} {
			got, err := get()
			must(t, err)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("by %s\n got %+v\nwant %+v", name, got, want)
			}
		}

		// UpdateNode writes every mutable field, keeps Created and the
		// addresses whatever the caller sends, and keeps the name if the
		// hostname is unchanged.
		upd := want
		upd.MachineKey, upd.NodeKey, upd.DiscoKey = key.NewMachine().Public(), key.NewNode().Public(), key.NewDisco().Public()
		upd.UserID, upd.Tags, upd.Endpoints = 8, nil, nil
		upd.LastSeen, upd.KeyExpiry = time.Time{}, time.Time{}
		upd.HomeRelay, upd.Ephemeral, upd.AuthKeyID = 0, false, 0
		upd.KeyLifetime = KeyLifetimeNever
		upd.Created, upd.IPv4, upd.IPv6 = time.Unix(1, 0), netip.MustParseAddr("100.64.0.99"), netip.Addr{}
		upd.Name = "ignored"
		got, err = s.UpdateNode(ctx, upd)
		must(t, err)
		upd.Created, upd.IPv4, upd.IPv6, upd.Name = want.Created, want.IPv4, want.IPv6, want.Name
		if !reflect.DeepEqual(got, upd) {
			t.Fatalf("updated\n got %+v\nwant %+v", got, upd)
		}
		if stored, _ := s.GetNode(ctx, want.ID); !reflect.DeepEqual(stored, upd) {
			t.Fatalf("stored\n got %+v\nwant %+v", stored, upd)
		}
	})
}

func TestNodeNames(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, _ := bk.openTest(t)
		ctx := context.Background()
		long := strings.Repeat("x", 70)
		var nodes []Node
		for _, host := range []string{"My Laptop", "my laptop", "MY_LAPTOP", long, long, "", "-"} {
			n, err := s.CreateNode(ctx, newNode(host, 1))
			must(t, err)
			nodes = append(nodes, n)
		}
		want := []string{"my-laptop", "my-laptop-2", "my-laptop-3", strings.Repeat("x", 63), strings.Repeat("x", 61) + "-2", "node", "node-2"}
		for i, n := range nodes {
			if n.Name != want[i] {
				t.Errorf("node %d (%q): name %q, want %q", i, n.Hostname, n.Name, want[i])
			}
		}
		// Renaming to a taken hostname gets a suffix; renaming to the node's
		// own name is not a clash with itself.
		for _, tc := range []struct {
			node int
			host string
			want string
		}{
			{0, "node", "node-3"},
			{1, "My Laptop", "my-laptop"},
			{1, "my laptop!", "my-laptop"},
			{2, "my laptop", "my-laptop-2"},
		} {
			n := nodes[tc.node]
			n.Hostname = tc.host
			got, err := s.UpdateNode(ctx, n)
			must(t, err)
			if got.Name != tc.want {
				t.Errorf("node %d renamed to %q: name %q, want %q", tc.node, tc.host, got.Name, tc.want)
			}
			nodes[tc.node] = got
		}
	})
}

func TestListsAndKeys(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, _ := bk.openTest(t)
		ctx := context.Background()
		sd := seedStore(t, s)
		users, err := s.ListUsers(ctx)
		must(t, err)
		if len(users) != 2 || users[0].ID != sd.ann.ID || users[1].ID != sd.bob.ID {
			t.Fatalf("users %+v", users)
		}
		k, err := s.GetAuthKey(ctx, sd.authKey.ID)
		must(t, err)
		if !reflect.DeepEqual(k, sd.authKey) {
			t.Fatalf("auth key\n got %+v\nwant %+v", k, sd.authKey)
		}
		k2, err := s.CreateAuthKey(ctx, AuthKey{Prefix: "wpk_2", Hash: []byte("h2"), UserID: sd.bob.ID, Reusable: true, Ephemeral: true})
		must(t, err)
		if !k2.Reusable || !k2.Ephemeral || k2.Tags != nil || !k2.Expiration.IsZero() {
			t.Fatalf("auth key %+v", k2)
		}
		keys, err := s.ListAuthKeys(ctx)
		must(t, err)
		if len(keys) != 2 || keys[0].ID != sd.authKey.ID || keys[1].ID != k2.ID {
			t.Fatalf("auth keys %+v", keys)
		}
		ak := sd.apiKey
		ak.Revoked, ak.Expiration = true, time.Unix(1800000000, 0).UTC()
		must(t, s.UpdateAPIKey(ctx, ak))
		apiKeys, err := s.ListAPIKeys(ctx)
		must(t, err)
		if len(apiKeys) != 1 || !reflect.DeepEqual(apiKeys[0], ak) {
			t.Fatalf("API keys %+v, want %+v", apiKeys, ak)
		}
	})
}

func TestDeletedUserIDNotReused(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, _ := bk.openTest(t)
		ctx := context.Background()
		_, err := s.CreateUser(ctx, User{Name: "stays", Role: RoleMember})
		must(t, err)
		leaver, err := s.CreateUser(ctx, User{Name: "leaver", Role: RoleMember})
		must(t, err)
		server := newNode("server", leaver.ID)
		server.Tags = []string{"tag:server"}
		server, err = s.CreateNode(ctx, server)
		must(t, err)
		must(t, s.DeleteUser(ctx, leaver.ID))
		next, err := s.CreateUser(ctx, User{Name: "newcomer", Role: RoleMember})
		must(t, err)
		if next.ID == leaver.ID {
			t.Fatalf("new user got the deleted user's ID %d, and with it the kept tagged node", next.ID)
		}
		kept, err := s.GetNode(ctx, server.ID)
		must(t, err)
		if kept.UserID != leaver.ID {
			t.Fatalf("kept node's UserID %d, want the record %d", kept.UserID, leaver.ID)
		}
	})
}

func TestListAuditLimits(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, _ := bk.openTest(t)
		ctx := context.Background()
		const n = maxAuditLimit + 5
		must(t, s.Tx(ctx, func(q Queries) error {
			for i := range n {
				if err := q.AppendAudit(ctx, AuditEvent{Time: time.Unix(int64(i), 0), Actor: "system", Action: "tick", Outcome: "ok"}); err != nil {
					return err
				}
			}
			return nil
		}))
		for _, tc := range []struct {
			limit, want int
		}{
			{0, defaultAuditLimit},
			{-1, defaultAuditLimit},
			{3, 3},
			{n, maxAuditLimit},
		} {
			events, err := s.ListAudit(ctx, AuditFilter{Limit: tc.limit})
			must(t, err)
			if len(events) != tc.want {
				t.Errorf("Limit %d: %d events, want %d", tc.limit, len(events), tc.want)
				continue
			}
			if !events[0].Time.Equal(time.Unix(n-1, 0)) {
				t.Errorf("Limit %d: first event at %v, want the newest", tc.limit, events[0].Time)
			}
		}
	})
}

func TestPolicyHistory(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backend) {
		s, _ := bk.openTest(t)
		ctx := context.Background()
		if _, err := s.LatestPolicy(ctx); !errors.Is(err, ErrNotFound) {
			t.Fatalf("LatestPolicy on an empty store: %v, want ErrNotFound", err)
		}
		at := time.Unix(1700000000, 0).UTC()
		first, err := s.SavePolicy(ctx, PolicyVersion{Hash: "h1", Source: "{}", Author: "file:/p", Created: at})
		must(t, err)
		second, err := s.SavePolicy(ctx, PolicyVersion{Hash: "h2", Source: `{"acls": []}`, Author: "user:ann@example.com", Diff: "-{}\n+{\"acls\": []}\n", Created: at.Add(time.Minute)})
		must(t, err)
		if first.ID == 0 || second.ID <= first.ID {
			t.Fatalf("IDs %d, %d: want increasing and non-zero", first.ID, second.ID)
		}
		latest, err := s.LatestPolicy(ctx)
		must(t, err)
		if !reflect.DeepEqual(latest, second) {
			t.Errorf("LatestPolicy = %+v, want %+v", latest, second)
		}
		all, err := s.ListPolicies(ctx, 0)
		must(t, err)
		if len(all) != 2 || !reflect.DeepEqual(all[1], first) {
			t.Errorf("ListPolicies = %+v, want [second first]", all)
		}
	})
}
