package testmesh

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/api"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/policy"
)

// TestExplainNamesGrant puts a just-in-time grant in force in the real
// coordinator's engine and asks the admin API to explain the flow it
// allows: denied before, then allowed by the grant, named with its rule
// and end, and the granted node sees the destination as a peer. (Filing
// and approving requests is the access service's part, tested there.)
func TestExplainNamesGrant(t *testing.T) {
	m := New(t, Options{Policy: `{
		"acls": [],
		"access": [{"src": ["ann@example.com"], "dst": ["bob@example.com:80"], "approvers": ["bob@example.com"], "maxDuration": "4h"}],
	}`})
	srv := httptest.NewServer(m.Coord.AdminHandler())
	defer srv.Close()
	ctx := context.Background()
	reg := m.Coord.Registry()
	admin, err := reg.CreateUser(ctx, Admin, store.User{Name: "admin@example.com", Role: store.RoleAdmin})
	must(t, err)
	_, adminKey, err := reg.CreateAPIKey(ctx, Admin, admin.ID, 0)
	must(t, err)
	asAdmin := api.NewRemoteClient(srv.URL, adminKey, nil)
	ann, bob := m.User("ann@example.com"), m.User("bob@example.com")
	laptop := m.AddNode("laptop", NodeOptions{AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID})})
	srvNode := m.AddNode("srv", NodeOptions{AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: bob.ID})})
	must(t, laptop.WaitFor(wait, HasPeers()))
	must(t, srvNode.WaitFor(wait, HasPeers()))
	self := laptop.Netmap().Self
	explain := func() api.ExplainResponse {
		t.Helper()
		r, err := asAdmin.ExplainPolicy(ctx, api.ExplainRequest{Src: self.Name, Dst: "srv", Port: 80})
		must(t, err)
		return r
	}
	if r := explain(); r.Allowed || r.Grant != nil {
		t.Fatalf("before the grant: %+v", r)
	}
	until := time.Now().Add(time.Hour).Truncate(time.Second)
	must(t, m.Coord.Engine().SetGrant(policy.Grant{ID: "ar-7", Node: self.ID, Dst: "bob@example.com:80", Rule: "access[0]", Until: until}))
	must(t, laptop.WaitFor(wait, HasPeers("srv")))
	r := explain()
	if !r.Allowed || r.Grant == nil || r.Grant.ID != "ar-7" || r.Grant.Rule != "access[0]" || !r.Grant.Until.Equal(until) || r.Rule != nil {
		t.Fatalf("with the grant: %+v", r)
	}
	m.Coord.Engine().RemoveGrant("ar-7")
	must(t, laptop.WaitFor(wait, HasPeers()))
	if r := explain(); r.Allowed {
		t.Fatalf("after the grant: %+v", r)
	}
}
