package testmesh

import (
	"context"
	"errors"
	"net/http"
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
	if !reachesSoon(ann, pg) || !reachesSoon(bob, pg) {
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
	cut := untilCut(t, conn, start, 2*time.Second, "bob's connection after the provider revoked him")
	t.Logf("bob's connection cut at most %v after the recheck began", cut.Round(time.Millisecond))
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
	if !reachesSoon(ann, netip.AddrPortFrom(addr4(t, build), 5432)) {
		t.Fatal("the tagged server bob registered stopped working after bob was offboarded")
	}
	_ = db
}

// lostPeers waits until n has no peers left, or its client stopped (its
// key revoked), within timeout.
func lostPeers(n *Node, timeout time.Duration) error {
	if err := n.WaitFor(timeout, HasPeers()); err != nil && !errors.Is(err, ErrStopped) {
		return err
	}
	return nil
}

// TestIdPOffboarding (issue 12): a user signed in on two devices, at a
// provider that rotates refresh tokens at every sign-in as Dex does, is
// then offboarded at the provider. A revoked session (invalid_grant)
// disables them at the first recheck; a deleted account (Dex's
// invalid_request with HTTP 500) at the second in a row (the default
// --oidc-recheck-fail-closed-after 2). Either way both devices lose their
// peers, and the tagged server loses them, within 2 s of the deciding
// recheck; the other user keeps access throughout.
func TestIdPOffboarding(t *testing.T) {
	for _, tc := range []struct {
		name     string
		offboard func(m *Mesh)
		rounds   []oidc.RecheckSummary // ann's and bob's; the last one decides
		reason   string
	}{
		{name: "session revoked", offboard: func(m *Mesh) { m.OP.Revoke("sub-ann") },
			rounds: []oidc.RecheckSummary{{Checked: 2, Revoked: 1}}, reason: "invalid_grant"},
		{name: "account deleted", offboard: func(m *Mesh) { m.OP.Delete("sub-ann") },
			rounds: []oidc.RecheckSummary{{Checked: 2, Refused: 1}, {Checked: 2, Revoked: 1}}, reason: "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New(t, Options{Policy: idpGroupPolicy, OIDC: &OIDCOptions{Users: idpUsers},
				Coordinator: coordinator.Config{Login: coordinator.LoginConfig{
					// Rounds are run by the test; the ticker never fires in it.
					OIDC: &coordinator.OIDCConfig{RecheckEvery: time.Hour}}}})
			ctx := context.Background()
			db, _ := dbServer(t, m)
			laptop := m.Up("ann-laptop", NodeOptions{}, m.AsOIDCUser("ann"))
			phone := m.Up("ann-phone", NodeOptions{}, m.AsOIDCUser("ann")) // ends the laptop sign-in's refresh token
			m.Up("bob-laptop", NodeOptions{}, m.AsOIDCUser("bob"))
			must(t, db.WaitFor(wait, HasPeers("ann-laptop", "ann-phone", "bob-laptop")))
			for _, n := range []*Node{laptop, phone} {
				must(t, n.WaitFor(wait, HasPeers("db")))
			}
			// The phone's sign-in rotated ann's refresh token: the round
			// must use the newest and find nothing changed.
			if sum, err := m.Coord.RecheckIdentities(ctx); err != nil || sum != (oidc.RecheckSummary{Checked: 2}) {
				t.Fatalf("quiet round after two sign-ins: %+v, %v", sum, err)
			}

			tc.offboard(m)
			var start time.Time
			for i, want := range tc.rounds {
				start = time.Now()
				sum, err := m.Coord.RecheckIdentities(ctx)
				if err != nil || sum != want {
					t.Fatalf("round %d: %+v, %v; want %+v", i+1, sum, err, want)
				}
				if last := i == len(tc.rounds)-1; userNamed(t, m, "ann@example.com").Disabled != last {
					t.Fatalf("round %d: ann disabled %v, want %v", i+1, !last, last)
				}
			}
			bound := 2*time.Second - time.Since(start)
			must(t, db.WaitFor(bound, HasPeers("bob-laptop")))
			for _, n := range []*Node{laptop, phone} {
				if err := lostPeers(n, 2*time.Second-time.Since(start)); err != nil {
					t.Fatalf("%v (2 s after the deciding recheck)", err)
				}
			}
			t.Logf("ann's devices left the mesh %v after the deciding recheck began", time.Since(start).Round(time.Millisecond))
			if len(auditWith(t, m, "user.disable", "ok", tc.reason)) != 1 {
				t.Fatalf("no user.disable event for %s", tc.reason)
			}
		})
	}
}

// TestIdPDown (issue 12): while the provider cannot be reached, or is
// slower than the coordinator waits, users keep access; once a user has
// had no answer for longer than the alert bound (--oidc-recheck-alert-after)
// every round reports it, and it is audited once.
func TestIdPDown(t *testing.T) {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	m := New(t, Options{Policy: idpGroupPolicy, OIDC: &OIDCOptions{Users: idpUsers},
		Coordinator: coordinator.Config{Login: coordinator.LoginConfig{
			OIDC: &coordinator.OIDCConfig{RecheckEvery: time.Hour, RecheckAlertAfter: time.Hour,
				// The coordinator waits 2 s for the provider; a stalled one
				// waits longer.
				HTTPClient: &http.Client{Transport: tr, Timeout: 2 * time.Second}}}}})
	ctx := context.Background()
	db, _ := dbServer(t, m)
	m.Up("ann-laptop", NodeOptions{}, m.AsOIDCUser("ann"))
	must(t, db.WaitFor(wait, HasPeers("ann-laptop")))

	m.OP.Stall(true)
	if sum, err := m.Coord.RecheckIdentities(ctx); err != nil || sum != (oidc.RecheckSummary{Checked: 1, Failed: 1}) {
		t.Fatalf("round with the provider stalled: %+v, %v", sum, err)
	}
	m.OP.Stall(false)
	m.OP.SetDown(true)
	if sum, err := m.Coord.RecheckIdentities(ctx); err != nil || sum != (oidc.RecheckSummary{Checked: 1, Failed: 1}) {
		t.Fatalf("round with the provider down: %+v, %v", sum, err)
	}
	// The last answer about ann is two hours old.
	ann := userNamed(t, m, "ann@example.com")
	ann.IdPCheckedAt = ann.IdPCheckedAt.Add(-2 * time.Hour)
	must(t, m.Coord.Store().UpdateUser(ctx, ann))
	for round := 1; round <= 2; round++ {
		if sum, err := m.Coord.RecheckIdentities(ctx); err != nil || sum != (oidc.RecheckSummary{Checked: 1, Failed: 1, Overdue: 1}) {
			t.Fatalf("overdue round %d: %+v, %v", round, sum, err)
		}
	}
	if n := len(auditWith(t, m, "login.oidc-recheck", "error", "no answer from the identity provider")); n != 1 {
		t.Fatalf("%d audited alerts, want 1", n)
	}
	if u := userNamed(t, m, "ann@example.com"); u.Disabled || u.RefreshToken == "" {
		t.Fatal("ann lost access while the provider was down")
	}
	must(t, db.WaitFor(wait, HasPeers("ann-laptop")))

	// The provider is back: the next round answers and the alert ends.
	m.OP.SetDown(false)
	if sum, err := m.Coord.RecheckIdentities(ctx); err != nil || sum != (oidc.RecheckSummary{Checked: 1}) {
		t.Fatalf("round with the provider back: %+v, %v", sum, err)
	}
	if u := userNamed(t, m, "ann@example.com"); time.Since(u.IdPCheckedAt) > time.Hour {
		t.Fatalf("the answer was not recorded: last checked %v", u.IdPCheckedAt)
	}
}

// TestIdPOffboardingByTheLoop: the coordinator's own recheck loop, not a
// round the test runs, takes a user deleted at the provider out of the
// mesh: within --oidc-recheck-fail-closed-after periods plus 2 s, each
// device loses its peers.
func TestIdPOffboardingByTheLoop(t *testing.T) {
	const every = 250 * time.Millisecond
	m := New(t, Options{Policy: idpGroupPolicy, OIDC: &OIDCOptions{Users: idpUsers},
		Coordinator: coordinator.Config{Login: coordinator.LoginConfig{
			OIDC: &coordinator.OIDCConfig{RecheckEvery: every}}}})
	db, _ := dbServer(t, m)
	laptop := m.Up("ann-laptop", NodeOptions{}, m.AsOIDCUser("ann"))
	phone := m.Up("ann-phone", NodeOptions{}, m.AsOIDCUser("ann"))
	must(t, db.WaitFor(wait, HasPeers("ann-laptop", "ann-phone")))
	start := time.Now()
	m.OP.Delete("sub-ann")
	bound := oidc.DefaultRecheckDisableAfter*every + 2*time.Second
	must(t, db.WaitFor(bound, HasPeers()))
	for _, n := range []*Node{laptop, phone} {
		if err := lostPeers(n, bound-time.Since(start)); err != nil {
			t.Fatalf("%v (%v after the deletion)", err, bound)
		}
	}
	t.Logf("ann's devices left the mesh %v after the deletion at the provider", time.Since(start).Round(time.Millisecond))
	if !userNamed(t, m, "ann@example.com").Disabled {
		t.Fatal("ann is not disabled")
	}
}
