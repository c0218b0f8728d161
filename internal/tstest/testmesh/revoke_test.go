package testmesh

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/derp"
	"github.com/warrenmesh/warren/internal/key"
)

// revokeBound is what the revocation tests allow for a removed node to
// lose the relay: the goal is 1 s (measured values are logged); the bound
// is generous for a loaded machine and still far below the periodic
// recheck (30 s embedded, 60 s standalone) that was the only path before.
const revokeBound = 5 * time.Second

// TestEmbeddedRelayDropsDeletedNode: deleting, disabling or expiring a node
// disconnects it from the embedded relay at once (pushed by the engine),
// not at the next periodic recheck, and it cannot come back.
func TestEmbeddedRelayDropsDeletedNode(t *testing.T) {
	tests := []struct {
		name   string
		revoke func(ctx context.Context, m *Mesh, n *Node) error
	}{
		{"deleted", func(ctx context.Context, m *Mesh, n *Node) error {
			return m.Coord.Registry().DeleteNode(ctx, Admin, store.NodeID(n.Netmap().Self.ID))
		}},
		{"user disabled", func(ctx context.Context, m *Mesh, n *Node) error {
			_, err := m.Coord.Registry().SetUserDisabled(ctx, Admin, userNamed(t, m, "ann@example.com").ID, true)
			return err
		}},
		{"expired", func(ctx context.Context, m *Mesh, n *Node) error {
			_, err := m.Coord.Registry().ExpireNode(ctx, Admin, store.NodeID(n.Netmap().Self.ID))
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(t, Options{})
			relayURL := m.Coord.DERPMap().Regions[0].URL
			a, b := registeredPair(t, m)
			_, cb := relayPair(t, relayURL, a.ID.Node, b.ID.Node)
			start := time.Now()
			must(t, tt.revoke(context.Background(), m, b))
			took := revokedWithin(t, cb, start, revokeBound)
			t.Logf("%s node off the embedded relay %v after the registry change", tt.name, took)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			if _, err := derp.Dial(ctx, relayURL, b.ID.Node, derp.ClientOptions{}); err == nil {
				t.Fatal("the removed node connected to the relay again")
			}
		})
	}
}

// registeredPair registers two nodes of one user (control plane only).
func registeredPair(t *testing.T, m *Mesh) (a, b *Node) {
	t.Helper()
	u := m.User("ann@example.com")
	k := m.AuthKey(registry.AuthKeyRequest{UserID: u.ID, Reusable: true})
	a, b = m.AddNode("laptop", NodeOptions{AuthKey: k}), m.AddNode("server", NodeOptions{AuthKey: k})
	must(t, a.WaitFor(wait, HasPeers("server")))
	must(t, b.WaitFor(wait, HasPeers("laptop")))
	return a, b
}

// relayPair connects both keys to the relay and checks a packet gets
// through.
func relayPair(t *testing.T, url string, ka, kb key.NodePrivate) (a, b *derp.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	a, err := derp.Dial(ctx, url, ka, derp.ClientOptions{})
	must(t, err)
	t.Cleanup(func() { a.Close() })
	b, err = derp.Dial(ctx, url, kb, derp.ClientOptions{})
	must(t, err)
	t.Cleanup(func() { b.Close() })
	must(t, a.Send(ctx, kb.Public(), []byte("hello")))
	if m, err := b.Recv(ctx); err != nil || string(m.(derp.Packet).Data) != "hello" {
		t.Fatalf("Recv: %#v, %v", m, err)
	}
	return a, b
}

// revokedWithin waits until the relay disconnects c (its traffic stops)
// and returns how long that took since start.
func revokedWithin(t *testing.T, c *derp.Client, start time.Time, bound time.Duration) time.Duration {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(bound):
		t.Fatalf("the removed node is still on the relay after %v", bound)
	}
	took := time.Since(start)
	var se *derp.ServerError
	if err := c.Err(); !errors.As(err, &se) {
		t.Fatalf("relay client ended with %v, want the relay's disconnect", err)
	}
	return took
}
