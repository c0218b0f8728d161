package registry

import (
	"context"
	"errors"
	"testing"

	"github.com/warrenmesh/warren/coordinator/auth"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/wire"
)

// member is the actor of a member user.
func member(u store.User) Actor {
	return Actor{Name: "user:" + u.Name, UserID: u.ID, Remote: "test"}
}

// adminUser creates an admin user and returns its actor.
func (h *harness) adminUser(name string) (store.User, Actor) {
	h.t.Helper()
	u, err := h.r.CreateUser(context.Background(), testAdmin, store.User{Name: name, Role: store.RoleAdmin})
	if err != nil {
		h.t.Fatal(err)
	}
	return u, Actor{Name: "user:" + u.Name, UserID: u.ID, Admin: true, Remote: "test"}
}

// join registers a new machine with plain and tags.
func (h *harness) join(plain string, tags ...string) (store.Node, error) {
	h.t.Helper()
	return h.r.Register(context.Background(), key.NewMachine().Public(), &wire.RegisterRequest{NodeKey: key.NewNode().Public(),
		DiscoKey: key.NewDisco().Public(), Hostname: "server", AuthKey: plain, Tags: tags}, "test")
}

// key creates a reusable pre-auth key as a.
func (h *harness) reusableKey(a Actor, owner store.UserID, tags ...string) (store.AuthKey, string) {
	h.t.Helper()
	k, plain, err := h.r.CreateAuthKey(context.Background(), a, AuthKeyRequest{UserID: owner, Reusable: true, Tags: tags})
	if err != nil {
		h.t.Fatalf("create key as %s with %v: %v", a.Name, tags, err)
	}
	return k, plain
}

// auditCount returns how many audit events with action and outcome are
// stored.
func (h *harness) auditCount(action, outcome string) int {
	h.t.Helper()
	evs, err := h.st.ListAudit(context.Background(), store.AuditFilter{Action: action})
	if err != nil {
		h.t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if e.Outcome == outcome {
			n++
		}
	}
	return n
}

// A reusable tagged key is checked against its creator as they are now,
// every time it is used (issue 11, defect 1).
func TestTaggedKeyFollowsItsCreator(t *testing.T) {
	ctx := context.Background()
	t.Run("creator disabled", func(t *testing.T) {
		h := newHarness(t, 0)
		ann := h.user("ann@example.com")
		k, plain := h.reusableKey(member(ann), 0, "tag:db")
		if _, err := h.join(plain, "tag:db"); err != nil {
			t.Fatalf("first use: %v", err)
		}
		if _, err := h.r.SetUserDisabled(ctx, testAdmin, ann.ID, true); err != nil {
			t.Fatal(err)
		}
		if got, _ := h.st.GetAuthKey(ctx, k.ID); !got.Revoked {
			t.Fatal("disabling the creator did not revoke the key")
		}
		if _, err := h.join(plain, "tag:db"); !errors.Is(err, auth.ErrKeyRevoked) {
			t.Fatalf("key of a disabled creator: got %v, want %v", err, auth.ErrKeyRevoked)
		}
		// Enabling the user again does not bring the key back.
		if _, err := h.r.SetUserDisabled(ctx, testAdmin, ann.ID, false); err != nil {
			t.Fatal(err)
		}
		if _, err := h.join(plain, "tag:db"); !errors.Is(err, auth.ErrKeyRevoked) {
			t.Fatalf("key after re-enabling: got %v, want %v", err, auth.ErrKeyRevoked)
		}
		if n := h.auditCount("authkey.revoke", "ok"); n != 1 {
			t.Fatalf("%d authkey.revoke events, want 1", n)
		}
	})
	t.Run("creator disabled without revocation", func(t *testing.T) {
		// A key whose revocation was undone by hand (or a store written by
		// an older coordinator) is still refused at use.
		h := newHarness(t, 0)
		ann := h.user("ann@example.com")
		k, plain := h.reusableKey(member(ann), 0, "tag:db")
		if _, err := h.r.SetUserDisabled(ctx, testAdmin, ann.ID, true); err != nil {
			t.Fatal(err)
		}
		k, _ = h.st.GetAuthKey(ctx, k.ID)
		k.Revoked = false
		if err := h.st.UpdateAuthKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		if _, err := h.join(plain, "tag:db"); !errors.Is(err, ErrTagNotOwned) {
			t.Fatalf("got %v, want %v", err, ErrTagNotOwned)
		}
	})
	t.Run("tag ownership removed", func(t *testing.T) {
		h := newHarness(t, 0)
		ann := h.user("ann@example.com")
		_, plain := h.reusableKey(member(ann), 0, "tag:db")
		h.setPolicy(`{"tagOwners": {"tag:db": ["group:ops"]}, "groups": {"group:ops": []}}`)
		if _, err := h.join(plain, "tag:db"); !errors.Is(err, ErrTagNotOwned) {
			t.Fatalf("got %v, want %v", err, ErrTagNotOwned)
		}
		if n := h.auditCount("node.register", "denied"); n != 1 {
			t.Fatalf("%d denied node.register events, want 1", n)
		}
	})
	t.Run("tag removed from tagOwners", func(t *testing.T) {
		h := newHarness(t, 0)
		_, bob := h.adminUser("bob@example.com")
		ann := h.user("ann@example.com")
		_, plain := h.reusableKey(bob, ann.ID, "tag:web")
		h.setPolicy(`{"tagOwners": {"tag:db": []}}`)
		if _, err := h.join(plain, "tag:web"); !errors.Is(err, ErrTagNotOwned) {
			t.Fatalf("got %v, want %v", err, ErrTagNotOwned)
		}
	})
	t.Run("admin creator deleted", func(t *testing.T) {
		h := newHarness(t, 0)
		bobUser, bob := h.adminUser("bob@example.com")
		ann := h.user("ann@example.com")
		k, plain := h.reusableKey(bob, ann.ID, "tag:web")
		if err := h.r.DeleteUser(ctx, testAdmin, bobUser.ID); err != nil {
			t.Fatal(err)
		}
		if got, _ := h.st.GetAuthKey(ctx, k.ID); !got.Revoked {
			t.Fatal("deleting the creator did not revoke the key they made for ann")
		}
		if _, err := h.join(plain, "tag:web"); !errors.Is(err, auth.ErrKeyRevoked) {
			t.Fatalf("got %v, want %v", err, auth.ErrKeyRevoked)
		}
	})
	t.Run("creator demoted", func(t *testing.T) {
		h := newHarness(t, 0)
		bobUser, bob := h.adminUser("bob@example.com")
		_, plain := h.reusableKey(bob, bobUser.ID, "tag:web")
		bobUser.Role = store.RoleMember
		if err := h.st.UpdateUser(ctx, bobUser); err != nil {
			t.Fatal(err)
		}
		if _, err := h.join(plain, "tag:web"); !errors.Is(err, ErrTagNotOwned) {
			t.Fatalf("got %v, want %v", err, ErrTagNotOwned)
		}
	})
	t.Run("host admin key keeps working", func(t *testing.T) {
		h := newHarness(t, 0)
		ann := h.user("ann@example.com")
		_, plain := h.reusableKey(testAdmin, ann.ID, "tag:web")
		for i := 0; i < 2; i++ {
			if _, err := h.join(plain, "tag:web"); err != nil {
				t.Fatalf("use %d: %v", i, err)
			}
		}
	})
	t.Run("legacy key is checked against tagOwners", func(t *testing.T) {
		// Keys stored before creators were recorded.
		h := newHarness(t, 0)
		ann := h.user("ann@example.com")
		plain, hash, display := auth.NewSecret(auth.AuthKeyPrefix)
		if _, err := h.st.CreateAuthKey(ctx, store.AuthKey{Prefix: display, Hash: hash, UserID: ann.ID,
			CreatorID: store.CreatorUnknown, Reusable: true, Tags: []string{"tag:web"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.join(plain, "tag:web"); err != nil {
			t.Fatal(err)
		}
		h.setPolicy(`{"tagOwners": {"tag:db": []}}`)
		if _, err := h.join(plain, "tag:web"); !errors.Is(err, ErrTagNotOwned) {
			t.Fatalf("legacy key for a tag no longer defined: got %v, want %v", err, ErrTagNotOwned)
		}
	})
}

// Keys may carry only tags the policy defines, whoever creates them.
func TestKeyTagsMustBeDefined(t *testing.T) {
	h := newHarness(t, 0)
	ctx := context.Background()
	ann := h.user("ann@example.com")
	_, bob := h.adminUser("bob@example.com")
	for _, a := range []Actor{testAdmin, bob, member(ann)} {
		_, _, err := h.r.CreateAuthKey(ctx, a, AuthKeyRequest{UserID: ann.ID, Tags: []string{"tag:nowhere"}})
		if !errors.Is(err, ErrTagNotOwned) {
			t.Errorf("%s creating a key for an undefined tag: got %v, want %v", a.Name, err, ErrTagNotOwned)
		}
	}
	// A member may not create a key for a tag only admins own.
	if _, _, err := h.r.CreateAuthKey(ctx, member(ann), AuthKeyRequest{Tags: []string{"tag:web"}}); !errors.Is(err, ErrTagNotOwned) {
		t.Errorf("member, admin-only tag: got %v", err)
	}
	// Nor may an admin tag a node with an undefined tag.
	n := h.register(key.MachinePublic{}, ann.ID)
	if _, err := h.r.SetTags(ctx, bob, n.ID, []string{"tag:nowhere"}); !errors.Is(err, ErrTagNotOwned) {
		t.Errorf("SetTags with an undefined tag: got %v", err)
	}
	keys, _ := h.st.ListAuthKeys(ctx)
	if len(keys) != 1 { // the one register made
		t.Fatalf("%d keys stored, want 1", len(keys))
	}
}

// A tagged server is owned by its tags: the member it was registered for
// can neither expire nor delete it (issue 11, defect 2).
func TestMemberCannotChangeTaggedNode(t *testing.T) {
	h := newHarness(t, 0)
	ctx := context.Background()
	ann := h.user("ann@example.com")
	server := h.register(key.MachinePublic{}, ann.ID, "tag:web")
	laptop := h.register(key.MachinePublic{}, ann.ID)
	a := member(ann)
	if _, err := h.r.ExpireNode(ctx, a, server.ID); !errors.Is(err, ErrForbidden) {
		t.Errorf("member expiring a tagged node: got %v, want %v", err, ErrForbidden)
	}
	if err := h.r.DeleteNode(ctx, a, server.ID); !errors.Is(err, ErrForbidden) {
		t.Errorf("member deleting a tagged node: got %v, want %v", err, ErrForbidden)
	}
	if got, err := h.st.GetNode(ctx, server.ID); err != nil || got.Expired(h.clock.Now()) {
		t.Fatalf("tagged node after the member's attempts: %+v, %v", got, err)
	}
	if n := h.auditCount("node.delete", "denied") + h.auditCount("node.expire", "denied"); n != 2 {
		t.Errorf("%d denied events, want 2", n)
	}
	// The member still manages their own laptop; admins manage the server.
	if _, err := h.r.ExpireNode(ctx, a, laptop.ID); err != nil {
		t.Errorf("member expiring their laptop: %v", err)
	}
	if err := h.r.DeleteNode(ctx, testAdmin, server.ID); err != nil {
		t.Errorf("admin deleting the server: %v", err)
	}
}

// rejoin registers machine again under a fresh node key with plain.
func (h *harness) rejoin(machine key.MachinePublic, plain string, tags ...string) (store.Node, error) {
	h.t.Helper()
	return h.r.Register(context.Background(), machine, &wire.RegisterRequest{NodeKey: key.NewNode().Public(),
		DiscoKey: key.NewDisco().Public(), Hostname: "laptop", AuthKey: plain, Tags: tags}, "test")
}

// A member holding someone else's device cannot make it theirs, or a
// server of theirs, with a key of their own: a device changes owner only
// with an admin's say (issue 12, defect 9).
func TestKeyCannotTakeOverADevice(t *testing.T) {
	h := newHarness(t, 0)
	ctx := context.Background()
	ann := h.user("ann@example.com")
	bob := h.user("bob@example.com")
	ops := h.user("ops@example.com") // owns tag:db through the policy's group:ops
	machine := key.NewMachine().Public()
	laptop := h.register(machine, ann.ID)

	_, bobKey := h.reusableKey(member(bob), 0)
	if _, err := h.rejoin(machine, bobKey); !errors.Is(err, ErrDeviceOwned) {
		t.Fatalf("bob's key on ann's laptop: %v, want %v", err, ErrDeviceOwned)
	}
	_, opsKey := h.reusableKey(member(ops), 0, "tag:db")
	if _, err := h.rejoin(machine, opsKey, "tag:db"); !errors.Is(err, ErrDeviceOwned) {
		t.Fatalf("a tag owner's key on ann's laptop: %v, want %v", err, ErrDeviceOwned)
	}
	if got, _ := h.st.GetNode(ctx, laptop.ID); got.UserID != ann.ID || got.Tagged() || got.NodeKey != laptop.NodeKey {
		t.Fatalf("the laptop changed hands: %+v", got)
	}
	if n := h.auditCount("node.register", "denied"); n != 2 {
		t.Fatalf("%d denied registrations audited, want 2", n)
	}
	// Its owner's own key, and a key an admin made, may.
	_, annKey := h.reusableKey(member(ann), 0)
	if _, err := h.rejoin(machine, annKey); err != nil {
		t.Fatalf("ann's own key: %v", err)
	}
	_, adminKey := h.reusableKey(testAdmin, bob.ID)
	if n, err := h.rejoin(machine, adminKey); err != nil || n.UserID != bob.ID {
		t.Fatalf("an admin's key for bob: %+v, %v", n, err)
	}
}
