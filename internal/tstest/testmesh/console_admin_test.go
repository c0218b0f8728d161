package testmesh

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/tstest/consoletest"
	"github.com/warrenmesh/warren/node/controlclient"
)

// TestConsoleAdminApprovesDevice: an admin signs in to the web console
// (password + TOTP), creates a pre-auth key there (shown once, then by
// its prefix), a laptop joins with it and waits for approval without
// peers, the admin approves it on its page, and the laptop gets its
// peers; every change is audited as the admin.
func TestConsoleAdminApprovesDevice(t *testing.T) {
	m := New(t, Options{Policy: openPolicy, LocalLogin: true,
		Coordinator: coordinator.Config{RequireApproval: true, ConsoleInsecureCookies: true}})
	ann := m.User("ann@example.com")
	root := consoletest.NewUser(t, m.Coord.Registry(), "root@example.com", store.RoleAdmin, true)
	b := consoletest.SignIn(t, m.URL, root)

	server := m.AddNode("server", NodeOptions{Tags: []string{"tag:server"},
		AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID, Tags: []string{"tag:server"}})})

	resp, body := b.Post(t, "/admin/keys", url.Values{"user": {strconv.FormatInt(int64(ann.ID), 10)}, "expiry": {"1h"}})
	sm := regexp.MustCompile(`<code class="key" data-secret>([^<]+)</code>`).FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || sm == nil {
		t.Fatalf("create key: %d %.400s", resp.StatusCode, body)
	}
	if _, body := b.Get(t, "/admin/keys"); strings.Contains(body, sm[1]) {
		t.Fatal("the keys page shows the secret again")
	}

	laptop := m.AddNode("laptop", NodeOptions{AuthKey: sm[1]})
	must(t, laptop.WaitFor(wait, func(nm *controlclient.Netmap) bool { return nm.Self.ID != 0 }))
	must(t, server.WaitFor(wait, func(nm *controlclient.Netmap) bool { return nm.Self.ID != 0 }))
	id := strconv.FormatInt(int64(laptop.Netmap().Self.ID), 10)
	if _, body := b.Get(t, "/admin/nodes?q=laptop"); !strings.Contains(body, "pending approval") {
		t.Fatalf("the nodes page does not show the laptop pending: %.600s", body)
	}
	if len(laptop.Netmap().Peers) != 0 {
		t.Fatal("a pending node has peers")
	}
	resp, body = b.Post(t, "/admin/nodes/"+id+"/approve", nil)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/admin/nodes/"+id || !strings.Contains(body, "The node was approved.") {
		t.Fatalf("approve: %d at %s %.400s", resp.StatusCode, resp.Request.URL, body)
	}
	must(t, laptop.WaitFor(wait, HasPeers("server")))
	must(t, server.WaitFor(wait, HasPeers("laptop")))
	for _, action := range []string{"authkey.create", "node.approve"} {
		evs, err := m.Coord.Store().ListAudit(context.Background(), store.AuditFilter{Action: action, Actor: "user:root@example.com"})
		if err != nil || len(evs) != 1 || evs[0].Outcome != "ok" {
			t.Fatalf("%s by the admin: %+v %v", action, evs, err)
		}
	}
}
