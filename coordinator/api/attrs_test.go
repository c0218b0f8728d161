package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
)

// send sends method path with apiKey and body and returns the status.
func (h *harness) send(apiKey, method, path, body string) int {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestIntegrationKey: an integration API key reads nodes' attributes and
// sets and unsets custom: ones, labelled with its name; it may not set
// node: ones, and every other endpoint refuses it with 403. Members may
// not set attributes; admins may.
func TestIntegrationKey(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	admin, adminClient, adminKey := h.user("admin@example.com", store.RoleAdmin)
	member, _, memberKey := h.user("ann@example.com", store.RoleMember)
	n := h.node(member.ID)

	// Only admins create integration keys, owned by an admin.
	if _, err := adminClient.CreateAPIKey(ctx, CreateAPIKeyRequest{Role: "integration", Name: "mdm sync"}); err == nil {
		t.Fatal("an integration key with a space in its name was created")
	}
	if _, err := adminClient.CreateAPIKey(ctx, CreateAPIKeyRequest{Role: "integration", Name: "mdm-sync", UserID: int64(member.ID)}); err == nil {
		t.Fatal("an integration key owned by a member was created")
	}
	if st := h.send(memberKey, "POST", "/api/v1/apikeys", `{"role": "integration", "name": "mine"}`); st != http.StatusForbidden {
		t.Fatalf("a member creating an integration key: status %d; want 403", st)
	}
	k, err := adminClient.CreateAPIKey(ctx, CreateAPIKeyRequest{Role: "integration", Name: "mdm-sync"})
	if err != nil {
		t.Fatal(err)
	}
	if k.Role != "integration" || k.Name != "mdm-sync" || k.UserID != int64(admin.ID) {
		t.Fatalf("created key %+v", k)
	}
	mdm := NewRemoteClient(h.srv.URL, k.Key, h.srv.Client())

	got, err := mdm.SetAttrs(ctx, int64(n.ID), SetAttrsRequest{Attrs: map[string]string{"custom:mdmCompliant": "true"}, Expires: "24h"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Attrs) != 1 || got.Attrs[0].Source != "integration mdm-sync" || got.Attrs[0].Expires.IsZero() {
		t.Fatalf("after set: %+v", got)
	}
	all, err := mdm.AllAttrs(ctx)
	if err != nil || len(all) != 1 || len(all[0].Attrs) != 1 {
		t.Fatalf("all attributes: %+v, %v", all, err)
	}
	for _, tc := range []struct {
		name, key, method, path, body string
		want                          int
	}{
		{"integration sets node:", k.Key, "POST", "/api/v1/nodes/1/attrs", `{"attrs": {"node:diskEncrypted": "true"}}`, http.StatusBadRequest},
		{"unknown field", k.Key, "POST", "/api/v1/nodes/1/attrs", `{"attrs": {"custom:a": "1"}, "ttl": "1h"}`, http.StatusBadRequest},
		{"bad expiry", k.Key, "POST", "/api/v1/nodes/1/attrs", `{"attrs": {"custom:a": "1"}, "expires": "tomorrow"}`, http.StatusBadRequest},
		{"trailing data", k.Key, "POST", "/api/v1/nodes/1/attrs", `{"attrs": {"custom:a": "1"}} {}`, http.StatusBadRequest},
		{"huge body", k.Key, "POST", "/api/v1/nodes/1/attrs", `{"attrs": {"custom:a": "` + strings.Repeat("x", maxAttrsBody) + `"}}`, http.StatusBadRequest},
		{"integration lists nodes", k.Key, "GET", "/api/v1/nodes", "", http.StatusForbidden},
		{"integration deletes a node", k.Key, "DELETE", "/api/v1/nodes/1", "", http.StatusForbidden},
		{"integration creates a key", k.Key, "POST", "/api/v1/apikeys", `{}`, http.StatusForbidden},
		{"integration reads the audit log", k.Key, "GET", "/api/v1/audit", "", http.StatusForbidden},
		{"integration unknown path", k.Key, "GET", "/api/v1/nope", "", http.StatusForbidden},
		{"member sets", memberKey, "POST", "/api/v1/nodes/1/attrs", `{"attrs": {"custom:a": "1"}}`, http.StatusForbidden},
		{"member lists all", memberKey, "GET", "/api/v1/attrs", "", http.StatusForbidden},
		{"member reads own node", memberKey, "GET", "/api/v1/nodes/1/attrs", "", http.StatusOK},
		{"admin sets", adminKey, "POST", "/api/v1/nodes/1/attrs", `{"attrs": {"custom:owner": "ops"}, "expires": "2099-01-01T00:00:00Z"}`, http.StatusOK},
		{"integration unsets by DELETE", k.Key, "DELETE", "/api/v1/nodes/1/attrs/custom:owner", "", http.StatusOK},
		{"integration unsets what is not set", k.Key, "POST", "/api/v1/nodes/1/attrs/unset", `{"attrs": ["custom:owner"]}`, http.StatusBadRequest},
		{"no such node", k.Key, "GET", "/api/v1/nodes/99/attrs", "", http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if n.ID != 1 {
				t.Fatalf("the node has ID %d; the table assumes 1", n.ID)
			}
			if got := h.send(tc.key, tc.method, tc.path, tc.body); got != tc.want {
				t.Fatalf("%s %s: status %d; want %d", tc.method, tc.path, got, tc.want)
			}
		})
	}
	got, err = mdm.UnsetAttrs(ctx, int64(n.ID), []string{"custom:mdmCompliant"})
	if err != nil || len(got.Attrs) != 0 {
		t.Fatalf("after unset: %+v, %v", got, err)
	}
	evs, err := h.st.ListAudit(ctx, store.AuditFilter{Action: "api.forbidden"})
	if err != nil || len(evs) != 5 || evs[0].Actor != "integration:mdm-sync" {
		t.Fatalf("refusals audited: %+v, %v; want 5 by integration:mdm-sync", evs, err)
	}
	// A demoted owner takes the key's power with it.
	if _, err := h.reg.SetUserRole(ctx, testAdmin, admin.ID, store.RoleMember); err != nil {
		t.Fatal(err)
	}
	if st := h.send(k.Key, "GET", "/api/v1/attrs", ""); st != http.StatusUnauthorized {
		t.Fatalf("integration key of a demoted admin: status %d; want 401", st)
	}
}

// FuzzDecodeSetAttrs: the set-attributes request decoder never panics;
// what it accepts has an expiry that is zero or parsed, and the registry's
// checks (run on whatever it decoded) never panic either.
func FuzzDecodeSetAttrs(f *testing.F) {
	f.Add(`{"attrs": {"custom:mdmCompliant": "true"}, "expires": "24h"}`)
	f.Add(`{"attrs": {"node:os": "linux"}, "expires": "2026-12-31T00:00:00Z"}`)
	f.Add(`{"attrs": null, "expires": "-1h"}`)
	f.Add(`{"attrs": {"custom:a": "1"}} []`)
	now := time.Unix(1_780_000_000, 0).UTC()
	f.Fuzz(func(t *testing.T, body string) {
		req, exp, err := DecodeSetAttrs(strings.NewReader(body), now)
		if err != nil {
			return
		}
		if req.Expires == "" && !exp.IsZero() {
			t.Fatalf("no expiry given, got %v", exp)
		}
		for name, v := range req.Attrs {
			_ = registry.CheckAttrName(name)
			_ = registry.CheckAttrValue(name, v)
		}
	})
}
