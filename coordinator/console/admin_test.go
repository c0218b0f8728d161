package console

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/access"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
)

// TestAdminPages checks that every admin page renders for an admin with
// what it must show, and that a member gets 403 for each, audited with
// the member's identity.
func TestAdminPages(t *testing.T) {
	h := newAdmHarness(t, admNode{name: "laptop", user: "ann"}, admNode{name: "db1", user: "root", tags: []string{"tag:db"}},
		admNode{name: "newbox", user: "ann", pending: true})
	if _, _, err := h.reg.CreateAuthKey(h.ctx, registry.Actor{Name: "test", Admin: true}, registry.AuthKeyRequest{UserID: h.ann.ID, Reusable: true}); err != nil {
		t.Fatal(err)
	}
	laptop := strconv.FormatInt(int64(h.nodes["laptop"].ID), 10)
	admin, member := h.as(h.root), h.as(h.ann)
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"/admin/overview", []string{"3</b> nodes", "1</b> waiting for approval", "900 home", "<td>3</td>", "version <b data-live=\"policy-version\">"}},
		{"/admin/users", []string{"root@example.com", "ann@example.com", "group:eng", "local"}},
		{"/admin/nodes", []string{"laptop", "db1", "tag:db", "pending approval", "3 nodes", `data-node-id="` + laptop + `"`}},
		{"/admin/nodes?q=tag:db", []string{"db1", "1 node match"}},
		{"/admin/nodes/" + laptop, []string{"laptop", "ann@example.com", "Expire key", "Key lifetime"}},
		{"/admin/keys", []string{"Create key", "reusable", "usable"}},
		{"/admin/audit", []string{"authkey.create"}},
		{"/admin/audit?action=authkey.", []string{"authkey.create"}},
		{"/admin/access", []string{"No pending requests", "No grants in force"}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, body := admin.get(tc.path)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("admin GET %s: %d\n%s", tc.path, resp.StatusCode, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("admin GET %s: no %q in\n%s", tc.path, w, body)
				}
			}
			if strings.Contains(body, "<script>") || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
				t.Errorf("admin GET %s: inline script or no CSP", tc.path)
			}
			before := len(h.audited("console.forbidden", "user:ann@example.com"))
			resp, body = member.get(tc.path)
			if resp.StatusCode != http.StatusForbidden || strings.Contains(body, "laptop") || strings.Contains(body, "root@example.com") {
				t.Fatalf("member GET %s: %d, want 403 revealing nothing\n%s", tc.path, resp.StatusCode, body)
			}
			if got := len(h.audited("console.forbidden", "user:ann@example.com")); got != before+1 {
				t.Fatalf("member GET %s: %d console.forbidden events, want %d", tc.path, got, before+1)
			}
		})
	}
}

// TestAdminNodesPaging checks that the nodes list shows a page at a
// time, in name order, with links to the others.
func TestAdminNodesPaging(t *testing.T) {
	var nodes []admNode
	for i := range 2*nodesPageSize + 7 {
		nodes = append(nodes, admNode{name: fmt.Sprintf("n%04d", i), user: "ann"})
	}
	h := newAdmHarness(t, nodes...)
	admin := h.as(h.root)
	for _, tc := range []struct {
		query            string
		rows             int
		first, last      string
		hasPrev, hasNext bool
	}{
		{"", nodesPageSize, "n0000", "n0099", false, true},
		{"?page=2", nodesPageSize, "n0100", "n0199", true, true},
		{"?page=3", 7, "n0200", "n0206", true, false},
		{"?page=9", 7, "n0200", "n0206", true, false}, // past the end: the last page
		{"?q=n01", nodesPageSize, "n0100", "n0199", false, false},
	} {
		resp, body := admin.get("/admin/nodes" + tc.query)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /admin/nodes%s: %d", tc.query, resp.StatusCode)
		}
		if got := strings.Count(body, "<tr data-node-id="); got != tc.rows {
			t.Errorf("GET /admin/nodes%s: %d rows, want %d", tc.query, got, tc.rows)
		}
		i, j := strings.Index(body, ">"+tc.first+"<"), strings.Index(body, ">"+tc.last+"<")
		if i < 0 || j < i {
			t.Errorf("GET /admin/nodes%s: %s not first or %s not last", tc.query, tc.first, tc.last)
		}
		if strings.Contains(body, `rel="prev"`) != tc.hasPrev || strings.Contains(body, `rel="next"`) != tc.hasNext {
			t.Errorf("GET /admin/nodes%s: prev/next links wrong", tc.query)
		}
	}
	if resp, _ := admin.get("/admin/nodes?page=0"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("page=0: %d, want 400", resp.StatusCode)
	}
}

// TestAdminAuditPaging checks that paging through the audit log, with
// many events of the same instant, shows each event once, newest first,
// and that an action prefix selects.
func TestAdminAuditPaging(t *testing.T) {
	h := newAdmHarness(t)
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	const n = 2*auditPageSize + 13
	for i := range n {
		action := "test.even"
		if i%2 == 1 {
			action = "test.odd"
		}
		if err := h.st.AppendAudit(h.ctx, store.AuditEvent{Time: at.Add(time.Duration(i/40) * time.Second), Actor: "test", Action: action,
			Target: fmt.Sprintf("t:%03d", i), Outcome: "ok", Detail: "{}"}); err != nil {
			t.Fatal(err)
		}
	}
	admin := h.as(h.root)
	for _, tc := range []struct {
		query string
		want  int
	}{{"?actor=test", n}, {"?actor=test&action=test.odd", n / 2}, {"?action=test.", n}, {"?action=test.*", n}} {
		seen := map[string]bool{}
		next := "/admin/audit" + tc.query
		for pages := 0; next != ""; pages++ {
			if pages > n {
				t.Fatalf("%s: paging does not end", tc.query)
			}
			resp, body := admin.get(next)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %d", next, resp.StatusCode)
			}
			for _, part := range strings.Split(body, "<td>t:")[1:] {
				target := part[:3]
				if seen[target] {
					t.Fatalf("%s: t:%s shown twice (page %d: %s)", tc.query, target, pages, next)
				}
				seen[target] = true
			}
			next = ""
			if _, after, ok := strings.Cut(body, `<a href="/admin/audit?`); ok {
				q, _, _ := strings.Cut(after, `"`)
				next = "/admin/audit?" + strings.ReplaceAll(q, "&amp;", "&")
			}
		}
		if len(seen) != tc.want {
			t.Errorf("%s: %d events shown, want %d", tc.query, len(seen), tc.want)
		}
	}
	if resp, _ := admin.get("/admin/audit?after=bogus"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("after=bogus: %d, want 400", resp.StatusCode)
	}
	if resp, _ := admin.get("/admin/audit?since=yesterday"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("since=yesterday: %d, want 400", resp.StatusCode)
	}
}

// TestAdminAccessRequests checks approving (for a shorter time), denying
// and revoking through the page, each as the admin.
func TestAdminAccessRequests(t *testing.T) {
	h := newAdmHarness(t, admNode{name: "laptop", user: "ann"}, admNode{name: "db1", user: "root", tags: []string{"tag:db"}})
	ask := func() string {
		t.Helper()
		r, err := h.acc.Request(h.ctx, access.Caller{Node: h.nodes["laptop"].ID}, "tag:db:5432", 2*time.Hour, "migration")
		if err != nil {
			t.Fatal(err)
		}
		return r.ID
	}
	admin := h.as(h.root)
	a, b := ask(), ask()
	_, body := admin.get("/admin/access")
	if !strings.Contains(body, a) || !strings.Contains(body, "migration") {
		t.Fatalf("pending %s not listed:\n%s", a, body)
	}
	if resp, body := admin.post("/admin/access/"+a+"/approve", url.Values{"duration": {"30m"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("approve: %d\n%s", resp.StatusCode, body)
	}
	if resp, body := admin.post("/admin/access/"+b+"/deny", url.Values{"reason": {"not today"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("deny: %d\n%s", resp.StatusCode, body)
	}
	hist, err := h.acc.History(h.ctx, access.Caller{Actor: registry.Actor{Name: "test", Admin: true}}, store.AccessFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range hist {
		switch {
		case r.ID == a && (r.State != "active" || r.Duration != 30*time.Minute || r.Approver != "user:root@example.com" && r.Approver != "root@example.com"):
			t.Errorf("approved request: %+v", r)
		case r.ID == b && (r.State != "denied" || r.Note != "not today"):
			t.Errorf("denied request: %+v", r)
		}
	}
	if resp, body := admin.post("/admin/access/"+a+"/revoke", url.Values{"reason": {"done"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ := admin.post("/admin/access/"+a+"/revoke", nil); resp.StatusCode != http.StatusConflict {
		t.Errorf("revoking again: %d, want 409", resp.StatusCode)
	}
	if resp, _ := admin.post("/admin/access/ar-999/approve", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("approving an unknown request: %d, want 404", resp.StatusCode)
	}
	if resp, _ := h.as(h.ann).post("/admin/access/"+b+"/approve", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("member approving: %d, want 403", resp.StatusCode)
	}
}

// TestAdminOverviewPolicyAndAlerts checks that the overview shows a
// rejected policy file with its error (the policy in force unchanged)
// and the recent alerts.
func TestAdminOverviewPolicyAndAlerts(t *testing.T) {
	h := newAdmHarness(t)
	admin := h.as(h.root)
	_, body := admin.get("/admin/overview")
	if !strings.Contains(body, `data-live="policy-rejected" hidden`) || !strings.Contains(body, "No alerts.") {
		t.Fatalf("overview before: %s", body)
	}
	version := h.pol.Status().Version
	if err := os.WriteFile(h.policyPath, []byte(`{"acls": [{"action": "acept"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.pol.Reload(h.ctx, "test"); err == nil {
		t.Fatal("a broken policy file was accepted")
	}
	if err := h.st.AppendAudit(h.ctx, store.AuditEvent{Time: time.Now(), Actor: "coordinator", Action: "alert.admin-action",
		Target: "user:root@example.com", Outcome: "ok", Detail: "{}"}); err != nil {
		t.Fatal(err)
	}
	_, body = admin.get("/admin/overview")
	rejected := h.pol.Status().Rejected
	if rejected == nil || h.pol.Status().Version != version {
		t.Fatalf("policy status after a broken file: %+v", h.pol.Status())
	}
	for _, want := range []string{"was rejected: " + html.EscapeString(rejected.Error), "alert.admin-action",
		fmt.Sprintf(`version <b data-live="policy-version">%d</b>`, version)} {
		if !strings.Contains(body, want) {
			t.Errorf("overview: no %q in\n%s", want, body)
		}
	}
}
