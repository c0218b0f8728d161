package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/netmap"
	"github.com/warrenmesh/warren/coordinator/policyfile"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/wire"
)

// testAdmin is the actor that sets up test fixtures.
var testAdmin = registry.Actor{Name: "local:test", Admin: true, Remote: "test"}

// harness is the remote admin API over a real store and registry, served
// by an httptest server.
type harness struct {
	t   *testing.T
	st  store.Store
	reg *registry.Registry
	srv *httptest.Server
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessWith(t, nil)
}

// newHarnessWith is newHarness with the API's Config adjusted by edit.
func newHarnessWith(t *testing.T, edit func(*Config)) *harness {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "warren.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, st: st}
	t.Cleanup(func() { st.Close() })
	al := audit.New(st, nil)
	engine := netmap.New(netmap.Config{})
	pm, err := policyfile.New(policyfile.Config{Path: filepath.Join(t.TempDir(), "policy.hujson"), Store: st, Audit: al, Apply: engine.SetPolicy})
	if err != nil {
		t.Fatal(err)
	}
	h.reg, err = registry.New(ctx, registry.Config{Store: st, Engine: engine, Audit: al})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.reg.Close)
	cfg := Config{Registry: h.reg, Store: st, Audit: al, Policy: pm, Engine: engine}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = httptest.NewServer(s.RemoteHandler())
	t.Cleanup(h.srv.Close)
	return h
}

// user creates a user and returns it with a client holding its API key.
func (h *harness) user(name string, role store.Role) (store.User, *Client, string) {
	h.t.Helper()
	ctx := context.Background()
	u, err := h.reg.CreateUser(ctx, testAdmin, store.User{Name: name, Role: role})
	if err != nil {
		h.t.Fatal(err)
	}
	_, apiKey, err := h.reg.CreateAPIKey(ctx, testAdmin, u.ID, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	return u, NewRemoteClient(h.srv.URL, apiKey, h.srv.Client()), apiKey
}

// node registers a node of owner with a fresh pre-auth key.
func (h *harness) node(owner store.UserID) store.Node {
	h.t.Helper()
	ctx := context.Background()
	_, plain, err := h.reg.CreateAuthKey(ctx, testAdmin, registry.AuthKeyRequest{UserID: owner})
	if err != nil {
		h.t.Fatal(err)
	}
	n, err := h.reg.Register(ctx, key.NewMachine().Public(), &wire.RegisterRequest{NodeKey: key.NewNode().Public(),
		DiscoKey: key.NewDisco().Public(), Hostname: "laptop", AuthKey: plain}, "test")
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

// post sends body to path with apiKey and returns the status and body.
func (h *harness) post(apiKey, path, body string) (int, string) {
	h.t.Helper()
	req, err := http.NewRequest("POST", h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func status(t *testing.T, err error) int {
	t.Helper()
	var ae *Error
	if errors.As(err, &ae) {
		return ae.Status
	}
	if err != nil {
		t.Fatalf("not an API error: %v", err)
	}
	return http.StatusOK
}

func TestSetKeyLifetime(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	_, asAdmin, adminKey := h.user("admin@example.com", store.RoleAdmin)
	ann, asMember, _ := h.user("ann@example.com", store.RoleMember)
	laptop := h.node(ann.ID)

	for _, tc := range []struct {
		name     string
		client   *Client
		lifetime time.Duration
		status   int
		want     string        // Node.KeyLifetime
		expires  time.Duration // from now; 0: never
	}{
		{"member lengthening her own key", asMember, 10 * 365 * 24 * time.Hour, http.StatusForbidden, "", registry.DefaultKeyExpiry},
		{"admin sets 720h", asAdmin, 720 * time.Hour, http.StatusOK, "720h0m0s", 720 * time.Hour},
		{"admin sets never", asAdmin, store.KeyLifetimeNever, http.StatusOK, "never", 0},
		{"admin sets too short", asAdmin, 30 * time.Second, http.StatusBadRequest, "never", 0},
		{"admin goes back to the default", asAdmin, 0, http.StatusOK, "", registry.DefaultKeyExpiry},
	} {
		start := time.Now()
		n, err := tc.client.SetKeyLifetime(ctx, int64(laptop.ID), tc.lifetime)
		if got := status(t, err); got != tc.status {
			t.Fatalf("%s: status %d (%v), want %d", tc.name, got, err, tc.status)
		}
		nodes, err := asAdmin.ListNodes(ctx)
		if err != nil || len(nodes) != 1 {
			t.Fatalf("%s: list: %v, %+v", tc.name, err, nodes)
		}
		listed := nodes[0]
		if tc.status == http.StatusOK && (n.KeyLifetime != listed.KeyLifetime || !n.KeyExpiry.Equal(listed.KeyExpiry)) {
			t.Errorf("%s: answered %+v, lists %+v", tc.name, n, listed)
		}
		if listed.KeyLifetime != tc.want {
			t.Errorf("%s: keyLifetime %q, want %q", tc.name, listed.KeyLifetime, tc.want)
		}
		switch {
		case tc.expires == 0 && !listed.KeyExpiry.IsZero():
			t.Errorf("%s: key expires %v, want never", tc.name, listed.KeyExpiry)
		case tc.expires == 0:
		case tc.status == http.StatusOK && (listed.KeyExpiry.Before(start.Add(tc.expires)) || listed.KeyExpiry.After(time.Now().Add(tc.expires))):
			t.Errorf("%s: key expires %v, want %v from now", tc.name, listed.KeyExpiry, tc.expires)
		}
	}

	// Bodies the API refuses before the registry sees them.
	path := "/api/v1/nodes/" + itoa(laptop.ID) + "/key-lifetime"
	for _, body := range []string{`{"lifetime": "forever"}`, `{"lifetime": "0s"}`, `{"lifetime": "-1h"}`, `{}`,
		`{"lifetime": "720h", "extra": 1}`, `{"lifetime": "100000h"}`, `not json`} {
		if code, out := h.post(adminKey, path, body); code != http.StatusBadRequest || !strings.Contains(out, `"error"`) {
			t.Errorf("body %s: %d %s, want 400 with an error", body, code, out)
		}
	}
	if code, _ := h.post(adminKey, "/api/v1/nodes/999/key-lifetime", `{"lifetime": "1h"}`); code != http.StatusNotFound {
		t.Errorf("unknown node: %d, want 404", code)
	}
	if code, out := h.post(adminKey, path, `{"lifetime": "2h"}`); code != http.StatusOK || !strings.Contains(out, `"keyLifetime":"2h0m0s"`) {
		t.Errorf("raw request: %d %s", code, out)
	}

	events, err := asAdmin.ListAudit(ctx, "", "node.key-lifetime", 0)
	if err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]int{}
	for _, e := range events {
		outcomes[e.Outcome]++
		if e.Target != "node:"+itoa(laptop.ID) && e.Target != "node:999" {
			t.Errorf("audit target %q", e.Target)
		}
	}
	// Denied: the member, 30s, 100000h, node 999; OK: 720h, never, default, 2h.
	if outcomes[audit.Denied] != 4 || outcomes[audit.OK] != 4 || len(events) != 8 {
		t.Fatalf("audit outcomes %v in %+v", outcomes, events)
	}
	if last := events[0]; !strings.Contains(last.Detail, `"lifetime":"2h0m0s"`) || last.Actor != "user:admin@example.com" {
		t.Errorf("last audit event %+v", last)
	}
}

func itoa(id store.NodeID) string { return strconv.FormatInt(int64(id), 10) }
