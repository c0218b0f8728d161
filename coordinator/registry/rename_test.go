package registry

import (
	"context"
	"errors"
	"testing"

	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/wire"
)

// TestRenameNode: who may rename which node, the name the engine then
// publishes, and that the name survives re-registration under another
// hostname.
func TestRenameNode(t *testing.T) {
	h := newHarness(t, 0)
	ctx := context.Background()
	ann := h.user("ann@example.com")
	bob := h.user("bob@example.com")
	laptop := h.register(key.MachinePublic{}, ann.ID)
	server := h.register(key.MachinePublic{}, ann.ID, "tag:db")
	annActor := Actor{Name: "user:ann@example.com", UserID: ann.ID}
	bobActor := Actor{Name: "user:bob@example.com", UserID: bob.ID}

	for _, tc := range []struct {
		name  string
		a     Actor
		id    store.NodeID
		to    string
		want  error
		after string
	}{
		{"owner renames own node", annActor, laptop.ID, "Ann-Laptop", nil, "ann-laptop"},
		{"another member", bobActor, laptop.ID, "bobs", ErrForbidden, ""},
		{"member renames tagged node", annActor, server.ID, "db", ErrForbidden, ""},
		{"admin renames tagged node", testAdmin, server.ID, "db", nil, "db"},
		{"taken", testAdmin, laptop.ID, "db", store.ErrConflict, ""},
		{"not a label", testAdmin, laptop.ID, "a.b", ErrBadRequest, ""},
		{"no such node", testAdmin, 999, "spare", store.ErrNotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := h.r.RenameNode(ctx, tc.a, tc.id, tc.to)
			if !errors.Is(err, tc.want) || (tc.want != nil) == (err == nil) {
				t.Fatalf("RenameNode: %v, want %v", err, tc.want)
			}
			if tc.want != nil {
				return
			}
			if n.Name != tc.after || !n.GivenName {
				t.Fatalf("renamed node: %+v", n)
			}
			if pub, ok := h.engine.Node(wire.NodeID(tc.id)); !ok || pub.Wire.Name != tc.after {
				t.Fatalf("the engine publishes %q, want %q", pub.Wire.Name, tc.after)
			}
		})
	}

	// The laptop re-registers (same machine) with another hostname: its
	// given name stays.
	_, plain, err := h.r.CreateAuthKey(ctx, testAdmin, AuthKeyRequest{UserID: ann.ID})
	if err != nil {
		t.Fatal(err)
	}
	n, err := h.r.Register(ctx, laptop.MachineKey, &wire.RegisterRequest{NodeKey: key.NewNode().Public(), DiscoKey: key.NewDisco().Public(),
		Hostname: "new-hostname", AuthKey: plain}, "test")
	if err != nil || n.Name != "ann-laptop" || n.Hostname != "new-hostname" {
		t.Fatalf("re-registration: %+v, %v", n, err)
	}
}

func TestSetUserRole(t *testing.T) {
	h := newHarness(t, 0)
	ctx := context.Background()
	bob := h.user("bob@example.com")
	member := Actor{Name: "user:bob@example.com", UserID: bob.ID}
	for _, tc := range []struct {
		a    Actor
		role store.Role
		want error
	}{
		{member, store.RoleAdmin, ErrForbidden},
		{testAdmin, "root", ErrBadRequest},
		{testAdmin, store.RoleAdmin, nil},
		{testAdmin, store.RoleMember, nil},
	} {
		u, err := h.r.SetUserRole(ctx, tc.a, bob.ID, tc.role)
		if !errors.Is(err, tc.want) || (tc.want != nil) == (err == nil) {
			t.Fatalf("SetUserRole(%s, %s): %v, want %v", tc.a.Name, tc.role, err, tc.want)
		}
		if err == nil && u.Role != tc.role {
			t.Fatalf("role %s, want %s", u.Role, tc.role)
		}
	}
	if _, err := h.r.SetUserRole(ctx, testAdmin, 999, store.RoleAdmin); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
	evs, err := h.st.ListAudit(ctx, store.AuditFilter{Action: "user.role"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 5 || evs[1].Outcome != "ok" || evs[4].Outcome != "denied" {
		t.Fatalf("audit: %+v", evs)
	}
}
