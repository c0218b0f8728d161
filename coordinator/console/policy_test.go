package console

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/netmap"
	"github.com/warrenmesh/warren/coordinator/policyfile"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/wire"
)

// policyFixture is a console over real components (SQLite store, audit
// log, netmap engine, policy file manager, registry) with a signed-in
// admin and two nodes in the engine.
type policyFixture struct {
	srv    *Server
	ts     *httptest.Server
	st     store.Store
	pm     *policyfile.Manager
	eng    *netmap.Engine
	path   string
	cookie *http.Cookie
	csrf   string
}

const fixturePolicy = `{
	"acls": [
		{"action": "accept", "src": ["ann@example.com"], "dst": ["ann@example.com:*"]},
	],
	"tests": [
		{"src": "ann@example.com", "accept": ["ann@example.com:22"]},
	],
}
`

func newPolicyFixture(t *testing.T) *policyFixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, "warren.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	al := audit.New(st, nil)
	eng := netmap.New(netmap.Config{})
	path := filepath.Join(dir, "policy.hujson")
	if err := os.WriteFile(path, []byte(fixturePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	pm, err := policyfile.New(policyfile.Config{Path: path, Store: st, Audit: al, Apply: eng.SetPolicy})
	if err != nil {
		t.Fatal(err)
	}
	if err := pm.Load(ctx); err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(ctx, registry.Config{Store: st, Engine: eng, Audit: al, Policy: pm.Current})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	srv, err := New(Config{Registry: reg, Store: st, Audit: al, Policy: pm, Engine: eng, InsecureCookies: true})
	if err != nil {
		t.Fatal(err)
	}
	u, err := reg.CreateUser(ctx, registry.Actor{Name: "test:setup", Admin: true},
		store.User{Name: "root@example.com", Email: "root@example.com", Role: store.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"ann-laptop", "bob-laptop"} {
		eng.Upsert(netmap.Node{Authorized: true, Wire: wire.Node{ID: wire.NodeID(i + 1), Name: name,
			User:      strings.TrimSuffix(name, "-laptop") + "@example.com",
			Addresses: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, 0, byte(i + 1)}), 32)}}})
	}
	sess := srv.sessions.create(u.ID)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &policyFixture{srv: srv, ts: ts, st: st, pm: pm, eng: eng, path: path,
		cookie: &http.Cookie{Name: srv.cookieName(), Value: sess.id}, csrf: sess.csrf}
}

// do sends a request with the admin's session; form (if any) is posted
// with the CSRF token.
func (f *policyFixture) do(t *testing.T, method, path string, form url.Values) (int, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		form.Set("csrf", f.csrf)
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, f.ts.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.AddCookie(f.cookie)
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestPolicyFormButtons posts the editor's form as a browser without
// JavaScript would, for each button and for drafts with and without
// errors, and checks what the page shows and what is in force after.
func TestPolicyFormButtons(t *testing.T) {
	typo := strings.Replace(fixturePolicy, `"accept", "src"`, `"acept", "src"`, 1)
	failing := strings.Replace(fixturePolicy, `"accept": ["ann@example.com:22"]`, `"deny": ["ann@example.com:22"]`, 1)
	widened := strings.Replace(fixturePolicy, `"dst": ["ann@example.com:*"]`, `"dst": ["ann@example.com:*", "bob@example.com:22"]`, 1)
	for _, tc := range []struct {
		name, action, source string
		code                 int
		want, notWant        []string
		inForce              string // the policy in force after
	}{
		{"valid", "validate", fixturePolicy, 200, []string{"Valid: 1 rules; all 1 tests pass"}, []string{"has errors"}, fixturePolicy},
		{"typo at its line", "validate", typo, 200, []string{"has errors", `class="pos">3:`, "acept"}, nil, fixturePolicy},
		{"failing test", "tests", failing, 200, []string{"has errors", "test failed", `class="pos">6:`}, nil, fixturePolicy},
		{"preview lists the nodes", "preview", widened, 200,
			[]string{`<span class="diff-add">&#43;` + "\t\t{&#34;action&#34;: &#34;accept&#34;, &#34;src&#34;: [&#34;ann@example.com&#34;], &#34;dst&#34;: [&#34;ann@example.com:*&#34;, &#34;bob@example.com:22&#34;]},",
				"<td>ann-laptop</td><td>bob-laptop </td>", "<td>bob-laptop</td><td>ann-laptop </td>"}, nil, fixturePolicy},
		{"preview of what is in force", "preview", fixturePolicy, 200, []string{"The draft is what is in force", "No node's peers or filter change"}, nil, fixturePolicy},
		{"save refused with errors", "save", typo, 422, []string{"was not saved", "policy in force is unchanged", `class="pos">3:`}, nil, fixturePolicy},
		{"save", "save", widened, 303, nil, nil, widened},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fix := newPolicyFixture(t)
			code, body := fix.do(t, "POST", "/admin/policy", url.Values{"action": {tc.action}, "source": {strings.ReplaceAll(tc.source, "\n", "\r\n")}})
			if code != tc.code {
				t.Fatalf("status %d, want %d: %s", code, tc.code, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %q:\n%s", w, body)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(body, w) {
					t.Errorf("page has %q", w)
				}
			}
			if got := fix.pm.Status().Source; got != tc.inForce {
				t.Errorf("in force after %s:\n%s\nwant\n%s", tc.action, got, tc.inForce)
			}
			if b, _ := os.ReadFile(fix.path); string(b) != tc.inForce {
				t.Errorf("policy file after %s:\n%s", tc.action, b)
			}
		})
	}
}

// TestPolicySaveAuditedHistoryExplain saves through the form and checks
// that the change is audited as the person, that it is in force in the
// engine, that the history shows it with its diff, and that explain
// answers from it.
func TestPolicySaveAuditedHistoryExplain(t *testing.T) {
	fix := newPolicyFixture(t)
	widened := strings.Replace(fixturePolicy, `"dst": ["ann@example.com:*"]`, `"dst": ["ann@example.com:*", "bob@example.com:22"]`, 1)
	if code, body := fix.do(t, "POST", "/admin/policy", url.Values{"action": {"save"}, "source": {widened}}); code != http.StatusSeeOther {
		t.Fatalf("save: %d %s", code, body)
	}
	evs, err := fix.st.ListAudit(context.Background(), store.AuditFilter{Action: "policy.apply", Actor: "user:root@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Actor != "user:root@example.com" || evs[0].Outcome != audit.OK {
		t.Fatalf("audit of the save: %+v", evs)
	}
	if f := fix.eng.PreviewPolicy(fix.pm.Current()); len(f) != 0 {
		t.Fatalf("the engine does not have the saved policy in force: %+v", f)
	}
	code, body := fix.do(t, "GET", "/admin/policy?saved=1", nil)
	if code != 200 || !strings.Contains(body, "Saved: the policy above is in force") || !strings.Contains(body, "by user:root@example.com") {
		t.Fatalf("editor after save: %d %s", code, body)
	}
	code, body = fix.do(t, "GET", "/admin/policy/history", nil)
	if code != 200 || !strings.Contains(body, "user:root@example.com") || !strings.Contains(body, `href="/admin/policy/history/2">diff`) {
		t.Fatalf("history: %d %s", code, body)
	}
	code, body = fix.do(t, "GET", "/admin/policy/history/2", nil)
	if code != 200 || !strings.Contains(body, `<span class="diff-add">&#43;`) || !strings.Contains(body, "bob@example.com:22") {
		t.Fatalf("version 2: %d %s", code, body)
	}
	if code, _ := fix.do(t, "GET", "/admin/policy/history/99", nil); code != http.StatusNotFound {
		t.Fatalf("unknown version: %d", code)
	}
	for _, tc := range []struct{ query, want string }{
		{"src=ann-laptop&dst=bob-laptop&port=22", "<strong>Allowed</strong>"},
		{"src=ann-laptop&dst=bob-laptop&port=22", "By rule 1 (line 3)"},
		{"src=bob-laptop&dst=ann-laptop&port=22", "<strong>Denied</strong>"},
		{"src=ann-laptop&dst=bob-laptop&port=x", "the port is a number"},
	} {
		if code, body := fix.do(t, "GET", "/admin/policy/explain?"+tc.query, nil); code != 200 || !strings.Contains(body, tc.want) {
			t.Errorf("explain %s: %d, want %q in\n%s", tc.query, code, tc.want, body)
		}
	}
}

// TestPolicyValidateEndpoint is the editor script's view: diagnostics as
// JSON with line and column, and the CSRF token required in the header.
func TestPolicyValidateEndpoint(t *testing.T) {
	fix := newPolicyFixture(t)
	typo := strings.Replace(fixturePolicy, `"accept", "src"`, `"acept", "src"`, 1)
	post := func(src, csrf string) (int, check) {
		b, _ := json.Marshal(map[string]string{"source": src})
		req, _ := http.NewRequest("POST", fix.ts.URL+"/admin/policy/validate", strings.NewReader(string(b)))
		req.AddCookie(fix.cookie)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-CSRF-Token", csrf)
		req.Header.Set("Origin", fix.ts.URL)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var c check
		if resp.StatusCode == 200 {
			if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, c
	}
	if code, c := post(fixturePolicy, fix.csrf); code != 200 || !c.OK || c.Tests != 1 || len(c.Diagnostics) != 0 {
		t.Fatalf("valid: %d %+v", code, c)
	}
	code, c := post(typo, fix.csrf)
	if code != 200 || c.OK || len(c.Diagnostics) == 0 || c.Diagnostics[0].Line != 3 || c.Diagnostics[0].Col < 1 {
		t.Fatalf("typo: %d %+v", code, c)
	}
	if code, _ := post(typo, "wrong"); code != http.StatusForbidden {
		t.Fatalf("without the CSRF token: %d, want 403", code)
	}
}

// TestPolicyDraftTooLarge: a draft past the console's form limit is
// refused with a message that says what to do, as a form and to the
// editor's script, and nothing changes.
func TestPolicyDraftTooLarge(t *testing.T) {
	fix := newPolicyFixture(t)
	huge := fixturePolicy + "//" + strings.Repeat("x", maxFormBytes) + "\n"
	code, body := fix.do(t, "POST", "/admin/policy", url.Values{"action": {"save"}, "source": {huge}})
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "warren-coordinator policy apply") {
		t.Errorf("form: %d %.300s", code, body)
	}
	b, _ := json.Marshal(map[string]string{"source": huge})
	req, _ := http.NewRequest("POST", fix.ts.URL+"/admin/policy/validate", strings.NewReader(string(b)))
	req.AddCookie(fix.cookie)
	req.Header.Set("X-CSRF-Token", fix.csrf)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(rb), "warren-coordinator policy apply") {
		t.Errorf("validate: %d %.300s", resp.StatusCode, rb)
	}
	if got := fix.pm.Status().Source; got != fixturePolicy {
		t.Errorf("in force after a huge draft:\n%.300s", got)
	}
}

// FuzzValidate checks what the editor relies on for any draft: no panic,
// OK exactly when there is no error, and every position inside the draft
// (a line that exists, a column within it or just past its end).
func FuzzValidate(f *testing.F) {
	f.Add(fixturePolicy)
	f.Add(strings.Replace(fixturePolicy, `"accept", "src"`, `"acept", "src"`, 1))
	f.Add("{\n\t\"acls\": [\n")
	f.Add("// é\n{\"acls\": [{\"action\": \"accept\", \"src\": [\"é\"], \"dst\": [\"x:1\"]}]}")
	f.Fuzz(func(t *testing.T, src string) {
		c := validate([]byte(src))
		errs := 0
		lines := strings.Split(src, "\n")
		for _, d := range c.Diagnostics {
			if !d.Warning {
				errs++
			}
			if d.Line == 0 {
				continue
			}
			if d.Line < 1 || d.Line > len(lines) || d.Col < 1 || d.Col > len([]rune(lines[d.Line-1]))+1 {
				t.Fatalf("diagnostic at %d:%d outside the draft (%d lines): %s", d.Line, d.Col, len(lines), d.Message)
			}
		}
		if c.OK != (errs == 0) {
			t.Fatalf("OK %v with %d errors", c.OK, errs)
		}
	})
}
