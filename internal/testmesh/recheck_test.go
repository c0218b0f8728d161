package testmesh

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/login/oidc"
	"github.com/warrenmesh/warren/coordinator/registry"
)

// TestIdPRecheck: the coordinator keeps each OIDC user's refresh token and
// asks the provider about them. A group removed at the provider takes the
// user's access with it; an account the provider revokes is disabled here,
// and its devices lose their connections within 2 s, while a tagged server
// that user registered keeps working.
func TestIdPRecheck(t *testing.T) {
	m := New(t, Options{Policy: idpGroupPolicy, OIDC: &OIDCOptions{Users: idpUsers},
		Coordinator: coordinator.Config{Login: coordinator.LoginConfig{
			// Rounds are run by the test; the ticker never fires in it.
			OIDC: &coordinator.OIDCConfig{RecheckEvery: time.Hour}}}})
	ctx := context.Background()
	db, pg := dbServer(t, m)
	ann := m.Up("ann-laptop", NodeOptions{DataPlane: true}, m.AsOIDCUser("ann"))
	bob := m.Up("bob-laptop", NodeOptions{DataPlane: true}, m.AsOIDCUser("bob"))
	annU, bobU := userNamed(t, m, "ann@example.com"), userNamed(t, m, "bob@example.com")
	if annU.RefreshToken == "" || bobU.RefreshToken == "" || annU.IdPCheckedAt.IsZero() {
		t.Fatalf("no refresh token kept: ann %v at %v, bob %v", annU.RefreshToken != "", annU.IdPCheckedAt, bobU.RefreshToken != "")
	}
	// Bob registers a tagged server of his own (tag:db is the admins', so
	// an admin key made for him).
	build := m.AddNode("build", NodeOptions{DataPlane: true, Tags: []string{"tag:db"},
		AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: bobU.ID, Tags: []string{"tag:db"}})})
	must(t, build.WaitFor(wait, HasPeers("ann-laptop", "bob-laptop")))
	echoOn(t, build, 5432)
	must(t, ann.WaitFor(wait, HasPeers("db", "build")))
	if !reaches(ann, pg, wait) || !reaches(bob, pg, wait) {
		t.Fatal("ann and bob, in the IdP group eng, cannot reach tag:db:5432")
	}

	// Nothing changed at the provider: a round changes nothing.
	sum, err := m.Coord.RecheckIdentities(ctx)
	must(t, err)
	if sum != (oidc.RecheckSummary{Checked: 2}) {
		t.Fatalf("quiet round: %+v", sum)
	}

	// Ann leaves the eng group at the provider: the next round takes her
	// access away.
	m.OP.SetClaims("sub-ann", nil, nil)
	sum, err = m.Coord.RecheckIdentities(ctx)
	must(t, err)
	if sum.Updated != 1 || sum.Revoked != 0 || sum.Failed != 0 {
		t.Fatalf("round after the group change: %+v", sum)
	}
	if g := userNamed(t, m, "ann@example.com").Groups; len(g) != 0 {
		t.Fatalf("ann's groups after the recheck: %v", g)
	}
	must(t, ann.WaitFor(wait, HasPeers()))
	if reaches(ann, pg, time.Second) {
		t.Fatal("ann reached tag:db:5432 after leaving the IdP group")
	}

	// Bob is offboarded at the provider, with a connection open.
	conn, err := dialWithin(bob, pg, wait)
	must(t, err)
	defer conn.Close()
	if !echoes(conn, wait) {
		t.Fatal("bob's connection does not work before the revocation")
	}
	m.OP.Revoke("sub-bob")
	start := time.Now()
	sum, err = m.Coord.RecheckIdentities(ctx)
	must(t, err)
	if sum.Revoked != 1 || sum.Failed != 0 {
		t.Fatalf("round after the revocation: %+v", sum)
	}
	if u := userNamed(t, m, "bob@example.com"); !u.Disabled || u.RefreshToken != "" {
		t.Fatalf("bob after the revocation: disabled %v, refresh token kept %v", u.Disabled, u.RefreshToken != "")
	}
	cut := time.Now()
	for echoes(conn, 200*time.Millisecond) {
		if time.Since(start) > 2*time.Second {
			t.Fatal("bob's connection still works 2 s after the provider revoked him")
		}
		cut = time.Now()
	}
	t.Logf("bob's connection cut %v after the recheck began", cut.Sub(start).Round(time.Millisecond))
	if len(auditWith(t, m, "login.oidc-recheck", "denied", "invalid_grant")) != 1 {
		t.Fatal("no audit event of the provider's refusal")
	}
	disabled := auditWith(t, m, "user.disable", "ok", "")
	if len(disabled) != 1 || disabled[0].Actor != "idp:"+m.OP.Issuer() {
		t.Fatalf("user.disable events: %+v", disabled)
	}
	// The revoked account's refresh token is gone: later rounds skip it.
	// Ann is back in eng at the provider; bob's tagged server, owned by its
	// tag, is still in the mesh for her.
	m.OP.SetClaims("sub-ann", nil, []string{"eng"})
	sum, err = m.Coord.RecheckIdentities(ctx)
	must(t, err)
	if sum != (oidc.RecheckSummary{Checked: 1, Updated: 1}) {
		t.Fatalf("round after bob was disabled: %+v, want only ann checked and updated", sum)
	}
	must(t, ann.WaitFor(wait, HasPeers("db", "build")))
	if !reaches(ann, netip.AddrPortFrom(addr4(t, build), 5432), wait) {
		t.Fatal("the tagged server bob registered stopped working after bob was offboarded")
	}
	_ = db
}
