package testmesh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/login/choice"
	"github.com/warrenmesh/warren/coordinator/login/local"
	"github.com/warrenmesh/warren/coordinator/login/oidc"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/tstest/oidctest"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/node/controlclient"
	"github.com/warrenmesh/warren/node/localapi"
)

// idpUsers are the accounts at the mesh's OpenID Provider.
var idpUsers = []oidctest.User{
	// A password login only; the provider spells the email in capitals.
	{Subject: "sub-ann", Username: "ann", Email: "Ann@Example.com", EmailVerified: true, Groups: []string{"eng"}},
	// A login with a one-time code: MFA.
	{Subject: "sub-bob", Username: "bob", Email: "bob@example.com", EmailVerified: true, Groups: []string{"eng"},
		AMR: []string{"pwd", "otp"}},
	// In no group.
	{Subject: "sub-cat", Username: "cat", Email: "cat@example.com", EmailVerified: true},
	// From a domain the coordinator may not allow.
	{Subject: "sub-eve", Username: "eve", Email: "eve@evil.test", EmailVerified: true, Groups: []string{"eng"}},
}

// idpGroupPolicy lets group:eng, whose members come from the identity
// provider's groups claim, reach tag:db on 5432.
const idpGroupPolicy = `{
	"groups": {"group:eng": []},
	"tagOwners": {"tag:db": ["autogroup:admin"]},
	"acls": [{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5432"]}],
}`

// mfaPolicy is idpGroupPolicy with an MFA login of at most 12 hours
// required; the local user dave is in group:eng by the file.
const mfaPolicy = `{
	"groups": {"group:eng": ["dave@example.com"]},
	"tagOwners": {"tag:db": ["autogroup:admin"]},
	"acls": [{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5432"], "mfa": "12h"}],
}`

// dbServer starts a tagged server, registered with a pre-auth key, that
// echoes on its mesh port 5432, and returns it with that address.
func dbServer(t *testing.T, m *Mesh) (*Node, netip.AddrPort) {
	t.Helper()
	ops := m.User("ops@example.com")
	db := m.AddNode("db", NodeOptions{DataPlane: true, Tags: []string{"tag:db"},
		AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: ops.ID, Tags: []string{"tag:db"}})})
	must(t, db.WaitFor(wait, func(*controlclient.Netmap) bool { return db.Engine() != nil }))
	echoOn(t, db, 5432)
	return db, netip.AddrPortFrom(addr4(t, db), 5432)
}

// reachesSoon reports whether src gets a working connection to dst,
// trying again for up to 30 s: the first attempts can miss while the
// destination is still applying the netmap that adds src (on a loaded
// machine that takes longer than one dial's retransmissions).
func reachesSoon(src *Node, dst netip.AddrPort) bool {
	_, err := poll.Wait(30*time.Second, func() error {
		if !reaches(src, dst, 3*time.Second) {
			return errors.New("unreachable")
		}
		return nil
	})
	return err == nil
}

// reaches reports whether src opens a connection to dst within timeout
// and a round trip through it works.
func reaches(src *Node, dst netip.AddrPort, timeout time.Duration) bool {
	c, err := dialWithin(src, dst, timeout)
	if err != nil {
		return false
	}
	defer c.Close()
	return echoes(c, timeout)
}

// userNamed returns the stored user called name.
func userNamed(t *testing.T, m *Mesh, name string) store.User {
	t.Helper()
	u, err := m.Coord.Store().GetUserByName(context.Background(), name)
	if err != nil {
		t.Fatalf("user %s: %v", name, err)
	}
	return u
}

// auditWith returns the audit events of action with outcome whose detail
// mentions want.
func auditWith(t *testing.T, m *Mesh, action, outcome, want string) []store.AuditEvent {
	t.Helper()
	events, err := m.Coord.Store().ListAudit(context.Background(), store.AuditFilter{Action: action})
	must(t, err)
	var out []store.AuditEvent
	for _, e := range events {
		if e.Outcome == outcome && strings.Contains(e.Detail, want) {
			out = append(out, e)
		}
	}
	return out
}

// TestOIDCLoginJoinsNodeAsUser: nodes join without a key through the
// provider; each user is created at first login (named by the email),
// with the provider's groups and, only after a second factor, an MFA time.
// The IdP group decides access: group:eng reaches tag:db:5432, a user in
// no group does not.
func TestOIDCLoginJoinsNodeAsUser(t *testing.T) {
	m := New(t, Options{Policy: idpGroupPolicy, OIDC: &OIDCOptions{Users: idpUsers}})
	db, pg := dbServer(t, m)
	if _, err := m.Coord.Store().GetUserByName(context.Background(), "ann@example.com"); err == nil {
		t.Fatal("ann exists before her first login")
	}

	start := time.Now()
	ann := m.Up("ann-laptop", NodeOptions{DataPlane: true}, m.AsOIDCUser("ann"))
	cat := m.Up("cat-laptop", NodeOptions{DataPlane: true}, m.AsOIDCUser("cat"))
	bob := m.Up("bob-laptop", NodeOptions{}, m.AsOIDCUser("bob"))
	t.Logf("three nodes joined through the provider in %v", time.Since(start).Round(time.Millisecond))

	annU, bobU, catU := userNamed(t, m, "ann@example.com"), userNamed(t, m, "bob@example.com"), userNamed(t, m, "cat@example.com")
	if annU.Issuer != m.OP.Issuer() || annU.Subject != "sub-ann" || annU.Role != store.RoleMember ||
		!slices.Equal(annU.Groups, []string{"eng"}) || len(catU.Groups) != 0 {
		t.Fatalf("users after login: ann %+v, cat %+v", annU, catU)
	}
	if !annU.MFAAt.IsZero() || !catU.MFAAt.IsZero() {
		t.Fatalf("MFA recorded for password-only logins: ann %v, cat %v", annU.MFAAt, catU.MFAAt)
	}
	if bobU.MFAAt.Before(start) || bobU.MFAAt.After(time.Now()) {
		t.Fatalf("bob's MFA login recorded at %v, want between %v and now", bobU.MFAAt, start)
	}
	for n, u := range map[*Node]store.User{ann: annU, bob: bobU, cat: catU} {
		self := n.Netmap().Self
		stored, err := m.Coord.Store().GetNode(context.Background(), store.NodeID(self.ID))
		must(t, err)
		if stored.UserID != u.ID || stored.Tagged() || self.User != u.Name {
			t.Fatalf("%s: stored %+v, netmap user %q; want a node of %s", n.Name, stored, self.User, u.Name)
		}
	}
	if n := len(auditWith(t, m, "login.oidc", "ok", `"created"`)); n != 3 {
		t.Fatalf("%d login.oidc events of created users, want 3", n)
	}
	checkAudit(t, m, "node.login", "ok", 3)

	// The IdP group is a policy group: netmaps and traffic follow it.
	must(t, db.WaitFor(wait, HasPeers("ann-laptop", "bob-laptop")))
	must(t, ann.WaitFor(wait, HasPeers("db")))
	must(t, cat.WaitFor(wait, HasPeers()))
	if !reachesSoon(ann, pg) {
		t.Fatal("ann, in the IdP group eng, cannot reach tag:db:5432")
	}
	if reaches(cat, pg, time.Second) {
		t.Fatal("cat, in no IdP group, reached tag:db:5432")
	}
}

// TestPolicyMFACondition: a rule with "mfa": "12h" admits the device of a
// user whose login used a second factor and not one whose login did not;
// a later MFA login of that user (on another device) admits her too.
func TestPolicyMFACondition(t *testing.T) {
	m := New(t, Options{Policy: mfaPolicy, OIDC: &OIDCOptions{Users: idpUsers}})
	db, pg := dbServer(t, m)
	bob := m.Up("bob-laptop", NodeOptions{DataPlane: true}, m.AsOIDCUser("bob"))
	ann := m.Up("ann-laptop", NodeOptions{DataPlane: true}, m.AsOIDCUser("ann"))

	must(t, bob.WaitFor(wait, HasPeers("db")))
	must(t, db.WaitFor(wait, HasPeers("bob-laptop")))
	if !reachesSoon(bob, pg) {
		t.Fatal("bob's MFA login does not satisfy the rule's mfa condition")
	}
	if len(ann.Netmap().Peers) != 0 || reaches(ann, pg, time.Second) {
		t.Fatal("ann, signed in without a second factor, reached a rule that needs MFA")
	}

	// Ann signs in on her phone with a one-time code: her MFA time is the
	// user's, so her laptop is admitted without signing in again.
	m.OP.SetClaims("sub-ann", []string{"pwd", "otp"}, []string{"eng"})
	m.Up("ann-phone", NodeOptions{}, m.AsOIDCUser("ann"))
	must(t, ann.WaitFor(wait, HasPeers("db")))
	if !reachesSoon(ann, pg) {
		t.Fatal("ann's laptop is not admitted after her MFA login")
	}
}

// daemonReaches reports whether d opens a connection to dst within
// timeout and a round trip through it works.
func daemonReaches(d *Daemon, dst netip.AddrPort, timeout time.Duration) (net.Conn, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := d.Dial(ctx, "tcp", dst.String())
	if err != nil {
		return nil, false
	}
	if !echoes(c, timeout) {
		c.Close()
		return nil, false
	}
	return c, true
}

// TestOIDCReauthAfterExpiry: "warren up" signs ann in through the
// provider; when her node key expires the node loses its peers, and
// "warren up --reauth" signs her in again and brings the node back under
// a new node key with the same node ID and mesh address.
func TestOIDCReauthAfterExpiry(t *testing.T) {
	m := New(t, Options{Policy: idpGroupPolicy, OIDC: &OIDCOptions{Users: idpUsers}})
	db, pg := dbServer(t, m)
	d := m.AddDaemon("ann-laptop")
	st, urls, err := d.Up(localapi.UpRequest{}, m.AsOIDCUser("ann"))
	if err != nil || st.State != localapi.StateRunning || st.Self == nil || len(urls) != 1 {
		t.Fatalf("up: %+v, sign-in URLs %q, %v", st, urls, err)
	}
	before, firstKey := *st.Self, d.NodeKey()
	conn, ok := daemonReaches(d, pg, wait)
	if !ok {
		t.Fatal("ann's node cannot reach tag:db:5432 after signing in")
	}
	defer conn.Close()

	_, err = m.Coord.Registry().ExpireNode(context.Background(), Admin, store.NodeID(before.ID))
	must(t, err)
	expired := time.Now()
	must(t, db.WaitFor(wait, HasPeers()))
	untilCut(t, conn, expired, wait, "the expired node's connection")
	// The daemon has no netmap event to wait on: poll its status.
	poll.Until(t, wait, "the expired node to lose its peers", func() error {
		if st := d.Status(context.Background()); len(st.Peers) != 0 {
			return fmt.Errorf("peers %+v", st.Peers)
		}
		return nil
	})
	if _, ok := daemonReaches(d, pg, 500*time.Millisecond); ok {
		t.Fatal("the expired node still reaches tag:db:5432")
	}

	st, urls2, err := d.Up(localapi.UpRequest{Reauth: true}, m.AsOIDCUser("ann"))
	if err != nil || st.State != localapi.StateRunning || st.Self == nil || len(urls2) != 1 || urls2[0] == urls[0] {
		t.Fatalf("up --reauth: %+v, sign-in URLs %q (first %q), %v", st, urls2, urls[0], err)
	}
	after := *st.Self
	if after.ID != before.ID || !slices.Equal(after.Addresses, before.Addresses) || after.Name != before.Name {
		t.Fatalf("re-auth: before %+v, after %+v; want the same node and addresses", before, after)
	}
	if d.NodeKey() == firstKey {
		t.Fatal("re-auth kept the expired node key")
	}
	if !after.KeyExpiry.IsZero() && !after.KeyExpiry.After(time.Now()) {
		t.Fatalf("re-auth did not renew the key expiry: %v", after.KeyExpiry)
	}
	must(t, db.WaitFor(wait, func(nm *controlclient.Netmap) bool {
		return len(nm.Peers) == 1 && nm.Peers[0].NodeKey == d.NodeKey()
	}))
	c, ok := daemonReaches(d, pg, wait)
	if !ok {
		t.Fatal("the re-authenticated node cannot reach tag:db:5432")
	}
	c.Close()
	checkAudit(t, m, "login.oidc", "ok", 2)
	checkAudit(t, m, "node.login", "ok", 2)
}

// TestLocalLoginThroughChoicePage: with OIDC and local users enabled the
// sign-in URL is a page offering both; a local user signs in there with
// password and TOTP code, and the node joins as hers with MFA recorded,
// enough for a rule that needs MFA.
func TestLocalLoginThroughChoicePage(t *testing.T) {
	m := New(t, Options{Policy: mfaPolicy, OIDC: &OIDCOptions{Users: idpUsers}, LocalLogin: true})
	_, pg := dbServer(t, m)
	const password = "correct horse battery staple"
	dave, secret := m.LocalUser("dave@example.com", password, true)

	laptop := m.AddNode("dave-laptop", NodeOptions{DataPlane: true})
	loginURL, err := laptop.LoginURL(wait)
	must(t, err)
	if !strings.HasPrefix(loginURL, m.URL+choice.ChoosePath) {
		t.Fatalf("sign-in URL %s is not the choice page", loginURL)
	}
	status, page, _ := oidctest.NewBrowser(t, "").Get(loginURL)
	links := oidctest.Links(page)
	hasLink := func(path string) bool {
		return slices.ContainsFunc(links, func(l string) bool { return strings.HasPrefix(l, m.URL+path) })
	}
	if status != http.StatusOK || len(links) != 2 || !hasLink(oidc.StartPath) || !hasLink(local.LoginPath) {
		t.Fatalf("choice page: %d, links %q", status, links)
	}

	start := time.Now()
	if status, page := m.AsLocalUser(dave.Name, password, secret)(loginURL); status != http.StatusOK || !strings.Contains(page, "Signed in") {
		t.Fatalf("local sign-in: %d %s", status, page)
	}
	must(t, laptop.WaitFor(wait, func(nm *controlclient.Netmap) bool { return HasPeers("db")(nm) && laptop.Engine() != nil }))
	self := laptop.Netmap().Self
	if self.User != dave.Name {
		t.Fatalf("the node joined as %q, want %s", self.User, dave.Name)
	}
	if u := userNamed(t, m, dave.Name); u.MFAAt.Before(start) || u.MFAAt.After(time.Now()) {
		t.Fatalf("dave's TOTP login recorded MFA at %v, want between %v and now", u.MFAAt, start)
	}
	if !reachesSoon(laptop, pg) {
		t.Fatal("dave's TOTP login does not satisfy the rule's mfa condition")
	}
	checkAudit(t, m, "login.local", "ok", 1)
	checkAudit(t, m, "login.oidc", "ok", 0)
}

// TestLoginRefusals: a login from an email domain the coordinator does not
// allow, and a node that asks for tags without a pre-auth key, are
// refused; the node stays out, the user sees why, and the refusals are
// audited.
func TestLoginRefusals(t *testing.T) {
	m := New(t, Options{Policy: idpGroupPolicy, OIDC: &OIDCOptions{Users: idpUsers, AllowedDomains: []string{"example.com"}}})
	db, _ := dbServer(t, m)
	ctx := context.Background()

	t.Run("disallowed domain", func(t *testing.T) {
		d := m.AddDaemon("eve-laptop")
		var pageStatus int
		var page string
		_, urls, err := d.Up(localapi.UpRequest{}, func(u string) (int, string) {
			pageStatus, page = m.AsOIDCUser("eve")(u)
			return pageStatus, page
		})
		if len(urls) != 1 || pageStatus != http.StatusForbidden || !strings.Contains(page, "Sign-in refused") ||
			!strings.Contains(page, "evil.test") {
			t.Fatalf("sign-in URLs %q; the browser saw %d %s", urls, pageStatus, page)
		}
		if err == nil || !strings.Contains(err.Error(), "coordinator refused") || !strings.Contains(err.Error(), "evil.test") {
			t.Fatalf("warren up: %v, want the coordinator's refusal naming the domain", err)
		}
		t.Logf("warren up said: %v", err)
		if st := d.Status(ctx); st.State != localapi.StateError || !strings.Contains(st.Error, "evil.test") || st.Self != nil {
			t.Fatalf("status after the refusal: %+v", st)
		}
		if _, err := m.Coord.Store().GetUserByName(ctx, "eve@evil.test"); err == nil {
			t.Fatal("the refused login created a user")
		}
		// The person the provider identified is audited; the unknown
		// machine's refused registration is only counted.
		if len(auditWith(t, m, "login.oidc", "denied", "evil.test")) != 1 ||
			len(auditWith(t, m, "node.register", "denied", "evil.test")) != 0 {
			t.Fatal("the refused login is not audited as a login.oidc denial (and only that)")
		}
	})

	t.Run("tags without a key", func(t *testing.T) {
		d := m.AddDaemon("sneaky")
		_, urls, err := d.Up(localapi.UpRequest{Tags: []string{"tag:db"}}, nil)
		if err == nil || !strings.Contains(err.Error(), "tags need a pre-auth key") {
			t.Fatalf("warren up --advertise-tags without a key: %v", err)
		}
		if len(urls) != 0 {
			t.Fatalf("the node was handed sign-in URLs %q for a join that cannot succeed", urls)
		}
		// An unknown machine without a key is nobody yet: counted, not
		// stored.
		if len(auditWith(t, m, "node.register", "denied", "tags need a pre-auth key")) != 0 ||
			m.Coord.Failures().Counts()["node.register"] == 0 {
			t.Fatal("the refusal of tags by an unknown machine is not counted (or was stored)")
		}
	})

	nodes, err := m.Coord.Store().ListNodes(ctx)
	must(t, err)
	if len(nodes) != 1 {
		t.Fatalf("%d nodes registered, want only the server", len(nodes))
	}
	if peers := db.Netmap().Peers; len(peers) != 0 {
		t.Fatalf("the server sees peers %s", Describe(db.Netmap()))
	}
}
