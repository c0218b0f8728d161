package testmesh

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/api"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
)

// TestAdminAPIAuth checks who may do what over the remote admin API.
func TestAdminAPIAuth(t *testing.T) {
	m := New(t, Options{})
	srv := httptest.NewServer(m.Coord.AdminHandler())
	defer srv.Close()
	ctx := context.Background()
	reg := m.Coord.Registry()

	admin, err := reg.CreateUser(ctx, Admin, store.User{Name: "admin@example.com", Role: store.RoleAdmin})
	must(t, err)
	member := m.User("member@example.com")
	other := m.User("other@example.com")
	_, adminKey, err := reg.CreateAPIKey(ctx, Admin, admin.ID, 0)
	must(t, err)
	_, memberKey, err := reg.CreateAPIKey(ctx, Admin, member.ID, 0)
	must(t, err)

	// Nodes of the member and of someone else.
	must(t, m.AddNode("member-laptop", NodeOptions{AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: member.ID})}).WaitFor(wait, HasPeers()))
	must(t, m.AddNode("other-laptop", NodeOptions{AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: other.ID})}).WaitFor(wait, HasPeers()))

	status := func(err error) int {
		var ae *api.Error
		if errors.As(err, &ae) {
			return ae.Status
		}
		if err != nil {
			t.Fatalf("not an API error: %v", err)
		}
		return http.StatusOK
	}
	anon := api.NewRemoteClient(srv.URL, "", nil)
	bogus := api.NewRemoteClient(srv.URL, "wak_abcdefghijklmnopqrstuvwxyz234567", nil)
	asAdmin := api.NewRemoteClient(srv.URL, adminKey, nil)
	asMember := api.NewRemoteClient(srv.URL, memberKey, nil)

	if _, err := anon.ListNodes(ctx); status(err) != http.StatusUnauthorized {
		t.Fatalf("no key: %v", err)
	}
	if _, err := bogus.ListNodes(ctx); status(err) != http.StatusUnauthorized {
		t.Fatalf("unknown key: %v", err)
	}
	if _, err := asMember.CreateUser(ctx, api.CreateUserRequest{Name: "mallory"}); status(err) != http.StatusForbidden {
		t.Fatalf("member creating a user: %v", err)
	}
	if _, err := asMember.ListAudit(ctx, "", "", 0); status(err) != http.StatusForbidden {
		t.Fatalf("member reading the audit log: %v", err)
	}
	if _, err := asMember.CreateAuthKey(ctx, api.CreateAuthKeyRequest{Tags: []string{"tag:db"}}); status(err) != http.StatusForbidden {
		t.Fatalf("member creating a tagged key: %v", err)
	}
	// The policy is for admins only, and its tagOwners let members tag.
	if _, err := asMember.PolicyStatus(ctx); status(err) != http.StatusForbidden {
		t.Fatalf("member reading the policy: %v", err)
	}
	if _, err := asMember.ExplainPolicy(ctx, api.ExplainRequest{Src: "member@example.com", Dst: "tag:db", Port: 22}); status(err) != http.StatusForbidden {
		t.Fatalf("member explaining the policy: %v", err)
	}
	m.WritePolicy(`{"tagOwners": {"tag:ci": ["member@example.com"], "tag:db": ["autogroup:admin"]}, "acls": []}`)
	if _, err := asAdmin.ReloadPolicy(ctx); err != nil {
		t.Fatalf("admin reloading the policy: %v", err)
	}
	if _, err := asMember.CreateAuthKey(ctx, api.CreateAuthKeyRequest{Tags: []string{"tag:ci"}}); err != nil {
		t.Fatalf("tag owner creating a key for its tag: %v", err)
	}
	if _, err := asMember.CreateAuthKey(ctx, api.CreateAuthKeyRequest{Tags: []string{"tag:ci", "tag:db"}}); status(err) != http.StatusForbidden {
		t.Fatalf("member creating a key for a tag it does not own: %v", err)
	}
	nodes, err := asMember.ListNodes(ctx)
	must(t, err)
	if len(nodes) != 1 || nodes[0].Hostname != "member-laptop" {
		t.Fatalf("member sees %+v, want only its own node", nodes)
	}
	all, err := asAdmin.ListNodes(ctx)
	must(t, err)
	if len(all) != 2 {
		t.Fatalf("admin sees %d nodes, want 2", len(all))
	}
	var otherID int64
	for _, n := range all {
		if n.Hostname == "other-laptop" {
			otherID = n.ID
		}
	}
	if err := asMember.DeleteNode(ctx, otherID); status(err) != http.StatusForbidden {
		t.Fatalf("member deleting another's node: %v", err)
	}
	// Members manage their own keys.
	k, err := asMember.CreateAuthKey(ctx, api.CreateAuthKeyRequest{})
	must(t, err)
	if k.Key == "" || k.UserID != int64(member.ID) {
		t.Fatalf("member's key = %+v", k)
	}
	keys, err := asAdmin.ListAuthKeys(ctx)
	must(t, err)
	for _, k := range keys {
		if k.Key != "" {
			t.Fatal("a listing revealed a plaintext key")
		}
	}
	// A disabled user's API key stops working.
	_, err = reg.SetUserDisabled(ctx, Admin, member.ID, true)
	must(t, err)
	if _, err := asMember.ListNodes(ctx); status(err) != http.StatusUnauthorized {
		t.Fatalf("disabled member: %v", err)
	}
	// Unauthenticated callers are counted, not audited.
	checkFailures(t, m, "api.auth", 3)
}

// TestAdminSocket checks the local socket: the test runs as the
// coordinator's own user, so it is let in as an admin.
func TestAdminSocket(t *testing.T) {
	m := New(t, Options{})
	sock := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := coordinator.ListenAdminSocket(sock)
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Coord.ServeAdmin(ctx, ln) }()
	defer func() {
		cancel()
		must(t, <-done)
	}()
	c := api.NewLocalClient(sock)
	who, err := c.WhoAmI(ctx)
	must(t, err)
	if !who.Admin {
		t.Fatalf("local caller is %+v, want admin", who)
	}
	u, err := c.CreateUser(ctx, api.CreateUserRequest{Name: "ann@example.com", Admin: true})
	must(t, err)
	k, err := c.CreateAPIKey(ctx, api.CreateAPIKeyRequest{UserID: u.ID})
	must(t, err)
	if k.Key == "" {
		t.Fatal("no plaintext API key at creation")
	}
}
