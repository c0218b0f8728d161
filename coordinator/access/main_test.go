package access

import (
	"context"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/netmap"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/policy"
	"github.com/warrenmesh/warren/internal/tstest/testclock"
	"github.com/warrenmesh/warren/internal/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testPolicy: eng may ask sre for the database's port for up to 4h with
// a reason, and for its SSH port with MFA fresh within 15m; oncall may
// break the glass for up to 1h.
const testPolicy = `{
	"groups": {
		"group:eng": ["ann@example.com", "bob@example.com"],
		"group:sre": ["sam@example.com"],
		"group:oncall": ["olive@example.com"],
	},
	"tagOwners": {"tag:prod-db": ["sam@example.com"]},
	"acls": [{"action": "accept", "src": ["group:sre"], "dst": ["tag:prod-db:*"]}],
	"access": [
		{"src": ["group:eng"], "dst": ["tag:prod-db:5432"], "approvers": ["group:sre"], "maxDuration": "4h", "reason": "required"},
		{"src": ["group:oncall"], "dst": ["tag:prod-db:*"], "approvers": [], "selfApprove": true, "maxDuration": "1h"},
		{"src": ["group:eng"], "dst": ["tag:prod-db:22"], "approvers": ["group:sre"], "maxDuration": "1h", "mfa": "15m"},
	],
}`

// fixture is a service over a real store, audit log and netmap engine
// with testPolicy, and one device each for ann, bob (eng), sam (sre),
// olive (oncall), a second device of ann's and the tagged database.
type fixture struct {
	t      testing.TB
	ctx    context.Context
	clock  *testclock.Clock
	st     store.Store
	audit  *audit.Log
	engine *netmap.Engine
	pol    *policy.Policy
	svc    *Service
	users  map[string]store.User
	nodes  map[string]store.Node // "ann", "ann2", "bob", "sam", "olive", "db"
}

var t0 = time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)

func mustPolicy(t testing.TB, src string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse([]byte(src))
	if err != nil {
		t.Fatalf("policy: %v", err)
	}
	return p
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "warren.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{t: t, ctx: ctx, clock: testclock.New(t0), st: st, audit: audit.New(st, nil),
		pol: mustPolicy(t, testPolicy), users: map[string]store.User{}, nodes: map[string]store.Node{}}
	for _, name := range []string{"ann", "bob", "sam", "olive", "root"} {
		u := store.User{Name: name + "@example.com", Role: store.RoleMember, MFAAt: t0.Add(-time.Hour)}
		if name == "root" {
			u.Role = store.RoleAdmin
		}
		if f.users[name], err = st.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	f.newEngine()
	for i, n := range []struct{ name, user, tag string }{{"ann", "ann", ""}, {"ann2", "ann", ""}, {"bob", "bob", ""},
		{"sam", "sam", ""}, {"olive", "olive", ""}, {"db", "sam", "tag:prod-db"}} {
		sn := store.Node{MachineKey: key.NewMachine().Public(), NodeKey: key.NewNode().Public(), DiscoKey: key.NewDisco().Public(),
			UserID: f.users[n.user].ID, Hostname: n.name, Created: t0, IPv4: netip.AddrFrom4([4]byte{100, 64, 0, byte(i + 1)})}
		if n.tag != "" {
			sn.Tags = []string{n.tag}
		}
		if sn, err = st.CreateNode(ctx, sn); err != nil {
			t.Fatal(err)
		}
		f.nodes[n.name] = sn
	}
	f.loadNodes()
	f.svc = f.newService()
	return f
}

// newEngine replaces the engine (a restart).
func (f *fixture) newEngine() {
	f.engine = netmap.New(netmap.Config{Policy: f.pol, Now: f.clock.Now})
}

// loadNodes puts the store's nodes into the engine, as the registry does.
func (f *fixture) loadNodes() {
	for _, sn := range f.nodes {
		u := f.userByID(sn.UserID)
		n := netmap.Node{Wire: wire.Node{ID: wire.NodeID(sn.ID), Name: sn.Name, Hostname: sn.Hostname, Tags: sn.Tags,
			NodeKey: sn.NodeKey, DiscoKey: sn.DiscoKey, Addresses: []netip.Prefix{netip.PrefixFrom(sn.IPv4, 32)}},
			UserID: int64(sn.UserID), Authorized: true, MFAAt: u.MFAAt}
		if !sn.Tagged() {
			n.Wire.User = u.Name
		}
		f.engine.Upsert(n)
	}
}

func (f *fixture) userByID(id store.UserID) store.User {
	for _, u := range f.users {
		if u.ID == id {
			return u
		}
	}
	f.t.Fatalf("no user %d", id)
	return store.User{}
}

func (f *fixture) newService() *Service {
	f.t.Helper()
	s, err := New(Config{Store: f.st, Audit: f.audit, Engine: f.engine, Policy: func() *policy.Policy { return f.pol }, Now: f.clock.Now})
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// node is a call from the named device.
func (f *fixture) node(name string) Caller { return Caller{Node: f.nodes[name].ID} }

// admin is an admin's call through the admin API.
func (f *fixture) admin() Caller {
	return Caller{Actor: registry.Actor{Name: "user:root@example.com", UserID: f.users["root"].ID, Admin: true}}
}

// request files a request that must succeed.
func (f *fixture) request(from, dst string, d time.Duration, reason string) wire.AccessRequest {
	f.t.Helper()
	r, err := f.svc.Request(f.ctx, f.node(from), dst, d, reason)
	if err != nil {
		f.t.Fatalf("request from %s for %s: %v", from, dst, err)
	}
	return r
}

// events returns the audit events of action, oldest first.
func (f *fixture) events(action string) []store.AuditEvent {
	f.t.Helper()
	es, err := f.st.ListAudit(f.ctx, store.AuditFilter{Action: action})
	if err != nil {
		f.t.Fatal(err)
	}
	for i, j := 0, len(es)-1; i < j; i, j = i+1, j-1 {
		es[i], es[j] = es[j], es[i]
	}
	return es
}

// detail decodes an audit event's detail.
func detail(t *testing.T, e store.AuditEvent) map[string]any {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal([]byte(e.Detail), &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// wantCode fails unless err carries code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if Code(err) != code {
		t.Fatalf("got %v (code %q), want code %q", err, Code(err), code)
	}
}

// grants returns the engine's grants by ID.
func (f *fixture) grants() map[string]policy.Grant {
	out := map[string]policy.Grant{}
	for _, g := range f.engine.Grants() {
		out[g.ID] = g
	}
	return out
}
