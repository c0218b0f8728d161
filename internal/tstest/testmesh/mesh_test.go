package testmesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/controlclient"
)

func TestMain(m *testing.M) {
	// The test OpenID Provider's login UI logs every request through the
	// default logger; keep the test output readable.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	goleak.VerifyTestMain(m)
}

// wait is how long a test waits for a change to reach a node. Changes
// arrive in milliseconds; the margin is for loaded CI machines.
const wait = 10 * time.Second

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestTwoNodesThenThird is the core scenario: two nodes register with a
// pre-auth key and see each other; a third registered later appears in both
// maps over the same channels, without reconnecting.
func TestTwoNodesThenThird(t *testing.T) {
	m := New(t, Options{})
	ann := m.User("ann@example.com")
	k := m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID, Reusable: true})

	a := m.AddNode("laptop", NodeOptions{AuthKey: k})
	b := m.AddNode("desktop", NodeOptions{AuthKey: k})
	must(t, a.WaitFor(wait, HasPeers("desktop")))
	must(t, b.WaitFor(wait, HasPeers("laptop")))

	start := time.Now()
	c := m.AddNode("phone", NodeOptions{AuthKey: k})
	must(t, a.WaitFor(wait, HasPeers("desktop", "phone")))
	must(t, b.WaitFor(wait, HasPeers("laptop", "phone")))
	must(t, c.WaitFor(wait, HasPeers("laptop", "desktop")))
	t.Logf("third node visible to both peers %v after it started", time.Since(start))
	if a.Client.Sessions() != 1 || b.Client.Sessions() != 1 {
		t.Fatalf("nodes reconnected: sessions a=%d b=%d", a.Client.Sessions(), b.Client.Sessions())
	}

	// Addresses are unique and within the mesh ranges; names are DNS labels.
	nm := c.Netmap()
	seen := map[string]bool{}
	for _, n := range append(nm.Peers, nm.Self) {
		for _, p := range n.Addresses {
			if !store.IPv4Range.Contains(p.Addr()) && !store.IPv6Range.Contains(p.Addr()) {
				t.Errorf("%s has address %v outside the mesh ranges", n.Name, p)
			}
			if seen[p.String()] {
				t.Errorf("address %v allocated twice", p)
			}
			seen[p.String()] = true
		}
	}
	// Peers learn that the others are online, with endpoints.
	must(t, a.WaitFor(wait, func(nm *controlclient.Netmap) bool {
		p, ok := nm.PeerByName("phone")
		return ok && p.Online
	}))
}

func TestOtherUsersInvisible(t *testing.T) {
	m := New(t, Options{})
	ann, bob := m.User("ann@example.com"), m.User("bob@example.com")
	a1 := m.AddNode("ann-1", NodeOptions{AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID, Reusable: true})})
	b1 := m.AddNode("bob-1", NodeOptions{AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: bob.ID})})
	must(t, a1.WaitFor(wait, HasPeers()))
	must(t, b1.WaitFor(wait, HasPeers()))
}

func TestEndpointsAndOffline(t *testing.T) {
	m := New(t, Options{})
	ann := m.User("ann@example.com")
	k := m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID, Reusable: true})
	a := m.AddNode("a", NodeOptions{AuthKey: k})
	b := m.AddNode("b", NodeOptions{AuthKey: k})
	must(t, a.WaitFor(wait, HasPeers("b")))
	must(t, b.WaitFor(wait, HasPeers("a")))
	eps := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.10:41641")}
	b.Client.SetEndpoints(eps, 1)
	must(t, a.WaitFor(wait, func(nm *controlclient.Netmap) bool {
		p, _ := nm.PeerByName("b")
		return len(p.Endpoints) == 1 && p.Endpoints[0] == eps[0] && p.HomeRelay == 1
	}))
	b.Stop()
	must(t, a.WaitFor(wait, func(nm *controlclient.Netmap) bool {
		p, ok := nm.PeerByName("b")
		return ok && !p.Online && !p.LastSeen.IsZero()
	}))
}

func TestRestartKeepsIdentityAndAddress(t *testing.T) {
	m := New(t, Options{})
	ann := m.User("ann@example.com")
	single := m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID}) // single-use
	id := NewIdentity()
	a := m.AddNode("server", NodeOptions{Identity: &id, AuthKey: single})
	must(t, a.WaitFor(wait, func(nm *controlclient.Netmap) bool { return nm.Self.ID != 0 }))
	first := a.Netmap().Self
	a.Stop()
	// The restarted node resends the key it joined with; that is not a reuse.
	again := m.AddNode("server", NodeOptions{Identity: &id, AuthKey: single})
	must(t, again.WaitFor(wait, func(nm *controlclient.Netmap) bool { return nm.Self.ID != 0 }))
	if got := again.Netmap().Self; got.ID != first.ID || got.Addresses[0] != first.Addresses[0] || got.Name != first.Name {
		t.Fatalf("restart changed identity: %+v -> %+v", first, got)
	}
}

func TestRejectedRegistrations(t *testing.T) {
	m := New(t, Options{})
	ann := m.User("ann@example.com")
	reg := m.Coord.Registry()
	ctx := context.Background()
	single := m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID})
	expiring, plainExpiring, err := reg.CreateAuthKey(ctx, Admin, registry.AuthKeyRequest{UserID: ann.ID, Reusable: true, TTL: time.Hour})
	must(t, err)
	_, err = reg.RevokeAuthKey(ctx, Admin, expiring.ID, true)
	must(t, err)
	revoked, plainRevoked, err := reg.CreateAuthKey(ctx, Admin, registry.AuthKeyRequest{UserID: ann.ID, Reusable: true})
	must(t, err)
	_, err = reg.RevokeAuthKey(ctx, Admin, revoked.ID, false)
	must(t, err)

	first := m.AddNode("first", NodeOptions{AuthKey: single})
	must(t, first.WaitFor(wait, func(nm *controlclient.Netmap) bool { return nm.Self.ID != 0 }))
	before, err := m.Coord.Store().ListNodes(ctx)
	must(t, err)

	// known: the key is one the coordinator issued, so the attempt is
	// audited; attempts by nobody it knows are counted instead.
	tests := []struct {
		name  string
		opts  NodeOptions
		known bool
	}{
		{"reused single-use key", NodeOptions{AuthKey: single}, true},
		{"unknown key", NodeOptions{AuthKey: "wpk_" + "abcdefghijklmnopqrstuvwxyz234567"}, false},
		{"malformed key", NodeOptions{AuthKey: "hunter2"}, false},
		{"expired key", NodeOptions{AuthKey: plainExpiring}, true},
		{"revoked key", NodeOptions{AuthKey: plainRevoked}, true},
		{"no key, no login", NodeOptions{}, false},
		{"tag the key does not grant", NodeOptions{AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID}), Tags: []string{"tag:db"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := m.AddNode("intruder", tt.opts)
			err := n.WaitErr(wait)
			var perm *controlclient.PermanentError
			if !errors.As(err, &perm) || perm.Err.Code != wire.CodeUnauthorized {
				t.Fatalf("got %v, want an unauthorized refusal", err)
			}
			t.Logf("refused: %v", err)
		})
	}
	after, err := m.Coord.Store().ListNodes(ctx)
	must(t, err)
	if len(after) != len(before) {
		t.Fatalf("rejected registrations changed the store: %d nodes before, %d after", len(before), len(after))
	}
	events, err := m.Coord.Store().ListAudit(ctx, store.AuditFilter{Action: "node.register"})
	must(t, err)
	denied := 0
	for _, e := range events {
		if e.Outcome == "denied" {
			denied++
		}
	}
	known := 0
	for _, tt := range tests {
		if tt.known {
			known++
		}
	}
	if denied != known {
		t.Fatalf("%d denied registrations audited, want %d", denied, known)
	}
	if n := m.Coord.Failures().Counts()["node.register"]; n != uint64(len(tests)-known) {
		t.Fatalf("%d refused registrations of unknown callers counted, want %d", n, len(tests)-known)
	}
}

func TestDeleteNodeClosesItsChannel(t *testing.T) {
	m := New(t, Options{})
	ann := m.User("ann@example.com")
	k := m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID, Reusable: true})
	a := m.AddNode("a", NodeOptions{AuthKey: k})
	b := m.AddNode("b", NodeOptions{AuthKey: k})
	must(t, a.WaitFor(wait, HasPeers("b")))
	must(t, b.WaitFor(wait, HasPeers("a")))
	must(t, m.Coord.Registry().DeleteNode(context.Background(), Admin, store.NodeID(b.Netmap().Self.ID)))
	must(t, a.WaitFor(wait, HasPeers()))
	var perm *controlclient.PermanentError
	if err := b.WaitErr(wait); !errors.As(err, &perm) || perm.Err.Code != wire.CodeNodeRemoved {
		t.Fatalf("deleted node's client: %v", err)
	}
}

func TestExpiredNodeGetsNoPeers(t *testing.T) {
	m := New(t, Options{})
	ann := m.User("ann@example.com")
	k := m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID, Reusable: true})
	a := m.AddNode("a", NodeOptions{AuthKey: k})
	b := m.AddNode("b", NodeOptions{AuthKey: k})
	must(t, a.WaitFor(wait, HasPeers("b")))
	must(t, b.WaitFor(wait, HasPeers("a")))
	_, err := m.Coord.Registry().ExpireNode(context.Background(), Admin, store.NodeID(b.Netmap().Self.ID))
	must(t, err)
	must(t, a.WaitFor(wait, HasPeers()))
	must(t, b.WaitFor(wait, func(nm *controlclient.Netmap) bool {
		return nm.Self.Expired && len(nm.Peers) == 0 && len(nm.PacketFilter) == 0
	}))
}

func TestEphemeralNodeRemovedAfterDisconnect(t *testing.T) {
	m := New(t, Options{Coordinator: coordinator.Config{EphemeralGrace: 100 * time.Millisecond}})
	ann := m.User("ann@example.com")
	persistent := m.AddNode("laptop", NodeOptions{AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID})})
	ci := m.AddNode("ci-runner", NodeOptions{AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID, Ephemeral: true})})
	must(t, persistent.WaitFor(wait, HasPeers("ci-runner")))
	must(t, ci.WaitFor(wait, HasPeers("laptop")))
	id := store.NodeID(ci.Netmap().Self.ID)
	ci.Stop()
	must(t, persistent.WaitFor(wait, HasPeers()))
	if _, err := m.Coord.Store().GetNode(context.Background(), id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ephemeral node still stored: %v", err)
	}
}

// TestSingleUseKeyRace starts several nodes at once with one single-use key:
// exactly one may join.
func TestSingleUseKeyRace(t *testing.T) {
	m := New(t, Options{})
	ann := m.User("ann@example.com")
	k := m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID})
	const racers = 5
	nodes := make([]*Node, racers)
	for i := range nodes {
		nodes[i] = m.AddNode(fmt.Sprintf("racer-%d", i), NodeOptions{AuthKey: k})
	}
	joined, refused := 0, 0
	for _, n := range nodes {
		err := n.WaitFor(wait, func(nm *controlclient.Netmap) bool { return nm.Self.ID != 0 })
		var perm *controlclient.PermanentError
		switch {
		case err == nil:
			joined++
		case errors.As(err, &perm) && perm.Err.Code == wire.CodeUnauthorized:
			refused++
		default:
			t.Fatalf("%s: %v", n.Name, err)
		}
	}
	if joined != 1 || refused != racers-1 {
		t.Fatalf("%d joined and %d were refused, want 1 and %d", joined, refused, racers-1)
	}
	stored, err := m.Coord.Store().ListNodes(context.Background())
	must(t, err)
	if len(stored) != 1 {
		t.Fatalf("%d nodes stored, want 1", len(stored))
	}
}
