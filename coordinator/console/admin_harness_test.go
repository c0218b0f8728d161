package console

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/access"
	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/netmap"
	"github.com/warrenmesh/warren/coordinator/policyfile"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/wire"
)

// admPolicy is the admin pages' tests' policy: ann (eng) may ask for
// access to the tagged database, root approves.
const admPolicy = `{
	"groups": {"group:eng": ["ann@example.com"], "group:admins": ["root@example.com"]},
	"tagOwners": {"tag:db": ["root@example.com"], "tag:web": ["root@example.com"]},
	"acls": [{"action": "accept", "src": ["group:admins"], "dst": ["*:*"]}],
	"access": [{"src": ["group:eng"], "dst": ["tag:db:5432"], "approvers": ["group:admins"], "maxDuration": "4h"}],
}`

// admHarness is the console over a real store, audit log, netmap engine,
// policy file, registry and access service, served by an httptest
// server, with an admin (root) and a member (ann), and sessions made
// directly (the sign-in pages are tested on their own).
type admHarness struct {
	t          testing.TB
	ctx        context.Context
	st         store.Store
	audit      *audit.Log
	engine     *netmap.Engine
	pol        *policyfile.Manager
	reg        *registry.Registry
	acc        *access.Service
	srv        *Server
	http       *httptest.Server
	policyPath string
	root       store.User
	ann        store.User
	nodes      map[string]store.Node
}

// admNode is a node the harness creates before the registry starts.
type admNode struct {
	name, user string
	tags       []string
	pending    bool
	routes     []netip.Prefix // advertised
}

// newAdmHarness starts the console with nodes (owned by "root" or
// "ann").
func newAdmHarness(t testing.TB, nodes ...admNode) *admHarness {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, "warren.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := &admHarness{t: t, ctx: ctx, st: st, audit: audit.New(st, nil), engine: netmap.New(netmap.Config{}), nodes: map[string]store.Node{}}
	if h.root, err = st.CreateUser(ctx, store.User{Name: "root@example.com", Role: store.RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	if h.ann, err = st.CreateUser(ctx, store.User{Name: "ann@example.com", Role: store.RoleMember}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "policy.hujson")
	h.policyPath = path
	if err := os.WriteFile(path, []byte(admPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	if h.pol, err = policyfile.New(policyfile.Config{Path: path, Store: st, Audit: h.audit, Apply: h.engine.SetPolicy}); err != nil {
		t.Fatal(err)
	}
	if err := h.pol.Load(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		u := h.root
		if n.user == "ann" {
			u = h.ann
		}
		sn := store.Node{MachineKey: key.NewMachine().Public(), NodeKey: key.NewNode().Public(), DiscoKey: key.NewDisco().Public(),
			UserID: u.ID, Hostname: n.name, Tags: n.tags, Pending: n.pending, Created: time.Now(),
			AdvertisedRoutes: n.routes}
		if sn, err = st.CreateNode(ctx, sn); err != nil {
			t.Fatal(err)
		}
		h.nodes[n.name] = sn
	}
	if h.reg, err = registry.New(ctx, registry.Config{Store: st, Engine: h.engine, Audit: h.audit, Policy: h.pol.Current}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.reg.Close)
	if h.acc, err = access.New(access.Config{Store: st, Audit: h.audit, Engine: h.engine, Policy: h.pol.Current}); err != nil {
		t.Fatal(err)
	}
	derpMap := &wire.DERPMap{Regions: []wire.DERPRegion{{ID: 900, Code: "home", Name: "embedded in the coordinator", URL: "http://127.0.0.1:1/derp"}}}
	if h.srv, err = New(Config{Registry: h.reg, Store: st, Audit: h.audit, Policy: h.pol, Engine: h.engine, Access: h.acc,
		DERPMap: derpMap, RelayClients: func() (int, bool) { return 3, true }, InsecureCookies: true}); err != nil {
		t.Fatal(err)
	}
	h.http = httptest.NewServer(h.srv.Handler())
	t.Cleanup(h.http.Close)
	t.Cleanup(h.srv.Close) // runs first: ends live streams before the server waits for them
	return h
}

// admClient is a browser signed in as one user.
type admClient struct {
	h    *admHarness
	sess *session
}

// as signs u in (a session made directly).
func (h *admHarness) as(u store.User) *admClient {
	return &admClient{h: h, sess: h.srv.sessions.create(u.ID)}
}

func (c *admClient) do(method, path string, form url.Values) (*http.Response, string) {
	c.h.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.h.http.URL+path, body)
	if err != nil {
		c.h.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.AddCookie(&http.Cookie{Name: cookieInsecure, Value: c.sess.id})
	resp, err := http.DefaultTransport.RoundTrip(req) // no redirects followed
	if err != nil {
		c.h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.h.t.Fatal(err)
	}
	return resp, string(b)
}

func (c *admClient) get(path string) (*http.Response, string) { return c.do(http.MethodGet, path, nil) }

// post sends form with the session's CSRF token added.
func (c *admClient) post(path string, form url.Values) (*http.Response, string) {
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", c.sess.csrf)
	return c.do(http.MethodPost, path, form)
}

// audited returns the audit events with action and actor.
func (h *admHarness) audited(action, actor string) []store.AuditEvent {
	h.t.Helper()
	evs, err := h.st.ListAudit(h.ctx, store.AuditFilter{Action: action, Actor: actor})
	if err != nil {
		h.t.Fatal(err)
	}
	return evs
}

func (h *admHarness) node(id store.NodeID) store.Node {
	h.t.Helper()
	n, err := h.st.GetNode(h.ctx, id)
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

// actor is the registry actor of c's user, as the console passes it.
func (c *admClient) actor() registry.Actor {
	u, err := c.h.st.GetUser(c.h.ctx, c.sess.user)
	if err != nil {
		c.h.t.Fatal(err)
	}
	return registry.Actor{Name: "user:" + u.Name, UserID: u.ID, Admin: u.Role == store.RoleAdmin, Remote: "test"}
}
