package testmesh

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/api"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/wire"
)

// TestExplainUsesPostureThatCounts asks the admin API to explain a real
// node's access to a posture-protected service. Explain reads the
// attributes that count (netmap.Node.Attrs: the store leaves stale and
// expired ones out), names the failing condition with the value seen,
// and follows the attributes as they change. The engine is given the
// attributes directly here; storing reports is the coordinator's own
// part, tested where it is built.
func TestExplainUsesPostureThatCounts(t *testing.T) {
	m := New(t, Options{Policy: `{
		"postures": {"posture:managed": ["node:diskEncrypted == true", "node:osVersion >= '6.1'"]},
		"acls": [{"action": "accept", "src": ["ann@example.com"], "dst": ["bob@example.com:80"], "srcPosture": ["posture:managed"]}],
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
	must(t, m.AddNode("srv", NodeOptions{AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: bob.ID})}).WaitFor(wait, HasPeers()))
	must(t, laptop.WaitFor(wait, HasPeers()))
	self := laptop.Netmap().Self

	eng := m.Coord.Engine()
	hold := func(counting map[string]string, held ...wire.PostureAttr) {
		t.Helper()
		n, ok := eng.Node(self.ID)
		if !ok {
			t.Fatal("the laptop is not in the engine")
		}
		n.Attrs, n.PostureAttrs = counting, held
		eng.Upsert(n)
	}
	explain := func() api.ExplainResponse {
		t.Helper()
		r, err := asAdmin.ExplainPolicy(ctx, api.ExplainRequest{Src: self.Name, Dst: "srv", Port: 80})
		must(t, err)
		return r
	}
	reasons := func(r api.ExplainResponse) string {
		var out []string
		for _, c := range r.Candidates {
			out = append(out, c.Reasons...)
		}
		return strings.Join(out, "; ")
	}
	now := time.Now()

	for _, tc := range []struct {
		name     string
		counting map[string]string
		held     []wire.PostureAttr
		allowed  bool
		reason   string // in the denial's reasons
		src      string // in the description of the source
	}{
		{name: "nothing reported", reason: "posture:managed failed because node:diskEncrypted is not reported", src: "posture []"},
		{
			name:     "wrong value",
			counting: map[string]string{"node:diskEncrypted": "false", "node:osVersion": "6.8"},
			held:     []wire.PostureAttr{{Name: "node:diskEncrypted", Value: "false", Source: "node", CollectedAt: now}},
			reason:   "posture:managed failed because node:diskEncrypted is false (needs == true)",
			src:      "posture [node:diskEncrypted=false node:osVersion=6.8]",
		},
		{
			name:     "old version",
			counting: map[string]string{"node:diskEncrypted": "true", "node:osVersion": "5.15.0"},
			reason:   `posture:managed failed because node:osVersion is "5.15.0" (needs >= "6.1")`,
		},
		{
			// The store holds a good value but it is stale: it does not
			// count, and explain says so.
			name:     "stale report",
			counting: map[string]string{"node:osVersion": "6.8"},
			held:     []wire.PostureAttr{{Name: "node:diskEncrypted", Value: "true", Source: "node", CollectedAt: now.Add(-time.Hour), Stale: true}},
			reason:   "posture:managed failed because node:diskEncrypted is not reported",
		},
		{
			name:     "fixed",
			counting: map[string]string{"node:diskEncrypted": "true", "node:osVersion": "6.8"},
			allowed:  true,
		},
	} {
		hold(tc.counting, tc.held...)
		r := explain()
		if r.Allowed != tc.allowed || !strings.Contains(reasons(r), tc.reason) || !strings.Contains(r.Src, tc.src) {
			t.Errorf("%s: allowed %v, src %q, %q; want allowed %v, %q in the reasons, %q in the source", tc.name, r.Allowed, r.Src, r.Text, tc.allowed, tc.reason, tc.src)
		}
	}
}
