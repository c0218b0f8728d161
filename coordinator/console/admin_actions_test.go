package console

import (
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/store"
)

// TestAdminActions checks each change the admin pages make: with the
// session's CSRF token it changes the state through the registry and is
// audited with the admin's identity; without the token, or with a wrong
// one, or from another site, it is refused (403) and nothing changes; a
// destructive change without its confirmation box is refused (400).
func TestAdminActions(t *testing.T) {
	h := newAdmHarness(t, admNode{name: "laptop", user: "ann"}, admNode{name: "newbox", user: "ann", pending: true},
		admNode{name: "old", user: "ann"}, admNode{name: "gone", user: "ann"},
		admNode{name: "router", user: "root", tags: []string{"tag:web"}, routes: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24")}})
	approved := func() bool {
		return slices.Contains(h.node(h.nodes["router"].ID).ApprovedRoutes, netip.MustParsePrefix("10.1.0.0/24"))
	}
	id := func(name string) string { return strconv.FormatInt(int64(h.nodes[name].ID), 10) }
	bob, err := h.st.CreateUser(h.ctx, store.User{Name: "bob@example.com", Role: store.RoleMember})
	if err != nil {
		t.Fatal(err)
	}
	bobID := strconv.FormatInt(int64(bob.ID), 10)
	admin := h.as(h.root)
	for _, tc := range []struct {
		name, path string
		form       url.Values
		confirm    bool   // needs confirm=yes
		action     string // the audit event's action
		check      func() bool
	}{
		{"approve", "/admin/nodes/" + id("newbox") + "/approve", nil, false, "node.approve",
			func() bool { return !h.node(h.nodes["newbox"].ID).Pending }},
		{"rename", "/admin/nodes/" + id("laptop") + "/rename", url.Values{"name": {"ann-laptop"}}, false, "node.rename",
			func() bool { return h.node(h.nodes["laptop"].ID).Name == "ann-laptop" }},
		{"key lifetime", "/admin/nodes/" + id("laptop") + "/key-lifetime", url.Values{"lifetime": {"never"}}, false, "node.key-lifetime",
			func() bool { return h.node(h.nodes["laptop"].ID).KeyLifetime == store.KeyLifetimeNever }},
		{"expire", "/admin/nodes/" + id("old") + "/expire", nil, true, "node.expire",
			func() bool { n := h.node(h.nodes["old"].ID); return n.Expired(time.Now()) }},
		{"delete node", "/admin/nodes/" + id("gone") + "/delete", nil, true, "node.delete",
			func() bool { _, err := h.st.GetNode(h.ctx, h.nodes["gone"].ID); return err != nil }},
		{"tags", "/admin/nodes/" + id("router") + "/tags", url.Values{"tags": {"tag:web, tag:db"}}, false, "node.tag",
			func() bool { return len(h.node(h.nodes["router"].ID).Tags) == 2 }},
		{"approve route", "/admin/nodes/" + id("router") + "/routes/approve", url.Values{"route": {"10.1.0.0/24"}}, false, "node.routes.approve", approved},
		{"unapprove route", "/admin/nodes/" + id("router") + "/routes/disable", url.Values{"route": {"10.1.0.0/24"}}, false, "node.routes.disable",
			func() bool { return !approved() }},
		{"role", "/admin/users/" + bobID + "/role", url.Values{"role": {"admin"}}, false, "user.role",
			func() bool { u, _ := h.st.GetUser(h.ctx, bob.ID); return u.Role == store.RoleAdmin }},
		{"disable", "/admin/users/" + bobID + "/disable", nil, true, "user.disable",
			func() bool { u, _ := h.st.GetUser(h.ctx, bob.ID); return u.Disabled }},
		{"enable", "/admin/users/" + bobID + "/enable", nil, false, "user.enable",
			func() bool { u, _ := h.st.GetUser(h.ctx, bob.ID); return !u.Disabled }},
		{"delete user", "/admin/users/" + bobID + "/delete", nil, true, "user.delete",
			func() bool { _, err := h.st.GetUser(h.ctx, bob.ID); return err != nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := func() url.Values {
				f := url.Values{}
				for k, v := range tc.form {
					f[k] = v
				}
				return f
			}
			// Refused: no token, a wrong token, another site's page.
			if resp, _ := admin.do(http.MethodPost, tc.path, form()); resp.StatusCode != http.StatusForbidden {
				t.Errorf("without a CSRF token: %d, want 403", resp.StatusCode)
			}
			f := form()
			f.Set("csrf", "wrong")
			f.Set("confirm", "yes")
			if resp, _ := admin.do(http.MethodPost, tc.path, f); resp.StatusCode != http.StatusForbidden {
				t.Errorf("with a wrong CSRF token: %d, want 403", resp.StatusCode)
			}
			if tc.confirm {
				if resp, _ := admin.post(tc.path, form()); resp.StatusCode != http.StatusBadRequest {
					t.Errorf("without confirmation: %d, want 400", resp.StatusCode)
				}
			}
			if tc.check() {
				t.Fatal("changed by a refused request")
			}
			f = form()
			if tc.confirm {
				f.Set("confirm", "yes")
			}
			if resp, body := admin.post(tc.path, f); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("POST %s: %d\n%s", tc.path, resp.StatusCode, body)
			}
			if !tc.check() {
				t.Fatal("not changed")
			}
			if evs := h.audited(tc.action, "user:root@example.com"); len(evs) != 1 {
				t.Fatalf("%d %s events by user:root@example.com, want 1", len(evs), tc.action)
			}
		})
	}
	// Errors from the registry come back as status pages.
	if resp, _ := admin.post("/admin/nodes/99999/approve", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("approving an unknown node: %d, want 404", resp.StatusCode)
	}
	if resp, _ := admin.post("/admin/nodes/"+id("laptop")+"/key-lifetime", url.Values{"lifetime": {"soon"}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a bad key lifetime: %d, want 400", resp.StatusCode)
	}
	// A member may call none of the forms.
	member := h.as(h.ann)
	before := len(h.audited("console.forbidden", "user:ann@example.com"))
	if resp, _ := member.post("/admin/nodes/"+id("laptop")+"/rename", url.Values{"name": {"mine"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("member renaming: %d, want 403", resp.StatusCode)
	}
	if got := len(h.audited("console.forbidden", "user:ann@example.com")); got != before+1 {
		t.Errorf("member's refused form: %d console.forbidden events, want %d", got, before+1)
	}
}

// TestAdminAuthKeys checks that a pre-auth key created on the page is
// shown in full once, on the answer to the form, and afterwards only by
// its prefix, and that revoking it works.
func TestAdminAuthKeys(t *testing.T) {
	h := newAdmHarness(t)
	admin := h.as(h.root)
	resp, body := admin.post("/admin/keys", url.Values{"user": {strconv.FormatInt(int64(h.ann.ID), 10)}, "tags": {"tag:web"},
		"expiry": {"2h"}, "reusable": {"yes"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("create: %d\n%s", resp.StatusCode, body)
	}
	m := regexp.MustCompile(`<code class="key" data-secret>([^<]+)</code>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no key shown:\n%s", body)
	}
	secret := m[1]
	keys, err := h.st.ListAuthKeys(h.ctx)
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys: %v %v", keys, err)
	}
	k := keys[0]
	if !k.Reusable || k.UserID != h.ann.ID || len(k.Tags) != 1 || k.Tags[0] != "tag:web" || k.Expiration.IsZero() || !strings.HasPrefix(secret, k.Prefix) {
		t.Fatalf("key %+v (secret %d chars)", k, len(secret))
	}
	if evs := h.audited("authkey.create", "user:root@example.com"); len(evs) != 1 || strings.Contains(evs[0].Detail, secret) {
		t.Fatalf("authkey.create events: %+v", evs)
	}
	_, body = admin.get("/admin/keys")
	if strings.Contains(body, secret) || !strings.Contains(body, k.Prefix) {
		t.Fatalf("the keys page shows the secret again or not the prefix")
	}
	path := "/admin/keys/" + strconv.FormatInt(int64(k.ID), 10) + "/revoke"
	if resp, _ := admin.post(path, nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("revoke without confirmation: %d, want 400", resp.StatusCode)
	}
	if resp, body := admin.post(path, url.Values{"confirm": {"yes"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke: %d\n%s", resp.StatusCode, body)
	}
	if keys, _ := h.st.ListAuthKeys(h.ctx); !keys[0].Revoked {
		t.Fatal("not revoked")
	}
	if resp, _ := admin.post("/admin/keys", url.Values{"tags": {"tag:nobody-owns"}}); resp.StatusCode == http.StatusOK {
		t.Error("a key with an undefined tag was created")
	}
}
