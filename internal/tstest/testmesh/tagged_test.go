package testmesh

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/controlclient"
)

// taggedPolicy lets ann (by name) reach tag:db:5432; ann may tag her
// servers tag:ci, which may reach nothing.
const taggedPolicy = `{
	"tagOwners": {"tag:db": ["autogroup:admin"], "tag:ci": ["ann@example.com"]},
	"acls": [{"action": "accept", "src": ["ann@example.com"], "dst": ["tag:db:5432"]}],
}`

// TestTaggedNodeNeverActsAsUser: a server ann registered with tag:ci is
// owned by its tag, not by ann: rules naming ann do not admit it, and it
// cannot turn into ann's device by signing in.
func TestTaggedNodeNeverActsAsUser(t *testing.T) {
	m := New(t, Options{Policy: taggedPolicy, OIDC: &OIDCOptions{Users: idpUsers}})
	_, pg := dbServer(t, m)
	laptop := m.Up("ann-laptop", NodeOptions{DataPlane: true}, m.AsOIDCUser("ann"))
	ann := userNamed(t, m, "ann@example.com")

	id := NewIdentity()
	ci := m.AddNode("ci", NodeOptions{Identity: &id, DataPlane: true, Tags: []string{"tag:ci"},
		AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID, Tags: []string{"tag:ci"}})})
	must(t, ci.WaitFor(wait, func(*controlclient.Netmap) bool { return ci.Engine() != nil }))
	must(t, laptop.WaitFor(wait, HasPeers("db")))
	if !reachesSoon(laptop, pg) {
		t.Fatal("ann's laptop cannot reach tag:db:5432")
	}
	if len(ci.Netmap().Peers) != 0 || reaches(ci, pg, time.Second) {
		t.Fatal("a tagged server ann registered reached a service the policy grants ann")
	}

	// The server's machine tries to sign in under a new node key (as
	// "warren up --reauth" without a key would): refused before any
	// sign-in URL, audited, and the node stays tagged.
	ci.Stop()
	reauth := NewIdentity()
	reauth.Machine = id.Machine
	again := m.AddNode("ci", NodeOptions{Identity: &reauth})
	err := again.WaitErr(wait)
	var perm *controlclient.PermanentError
	if !errors.As(err, &perm) || perm.Err.Code != wire.CodeUnauthorized || !strings.Contains(err.Error(), "tagged node") {
		t.Fatalf("sign-in on a tagged node: %v, want an unauthorized refusal naming the tagged node", err)
	}
	if u, _ := again.LoginURL(time.Millisecond); u != "" {
		t.Fatalf("a tagged node was given a sign-in URL: %s", u)
	}
	if len(auditWith(t, m, "node.register", "denied", "tagged node")) == 0 {
		t.Fatal("the refused sign-in of a tagged node is not audited")
	}
	stored, err := m.Coord.Store().GetNodeByMachineKey(context.Background(), id.Machine.Public())
	must(t, err)
	if !stored.Tagged() || stored.Tags[0] != "tag:ci" {
		t.Fatalf("the tagged node changed: %+v", stored)
	}
}
