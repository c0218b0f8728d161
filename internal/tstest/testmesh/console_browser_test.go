package testmesh

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/tstest/browser"
	"github.com/warrenmesh/warren/internal/tstest/consoletest"
	"github.com/warrenmesh/warren/internal/tstest/oidctest"
	"github.com/warrenmesh/warren/node/controlclient"
)

// The web console in a real browser (headless Chromium through
// internal/tstest/browser) against a real coordinator with real nodes:
// the "must show" list of issue 21. Screenshots go to
// $WARREN_TEST_ARTIFACTS (default: the test's temporary directory).

// browserLimit bounds each browser test as a whole.
const browserLimit = 3 * time.Minute

// consoleMesh is a mesh whose console admins sign in with a local
// account and TOTP and members through the OpenID Provider (the choice
// of both), with two members' nodes online.
type consoleMesh struct {
	*Mesh
	admin    consoletest.User
	ann, bob *Node
}

func newConsoleMesh(t *testing.T, policy string) *consoleMesh {
	t.Helper()
	m := New(t, Options{Coordinator: coordinator.Config{ConsoleInsecureCookies: true}, Policy: policy, LocalLogin: true,
		OIDC: &OIDCOptions{Users: []oidctest.User{{Subject: "sub-mia", Username: "mia", Email: "mia@example.com", EmailVerified: true}}}})
	cm := &consoleMesh{Mesh: m, admin: consoletest.NewUser(t, m.Coord.Registry(), "root@example.com", store.RoleAdmin, true)}
	ann, bob := m.User("ann@example.com"), m.User("bob@example.com")
	cm.ann = m.AddNode("ann-laptop", NodeOptions{AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID, TTL: time.Hour})})
	cm.bob = m.AddNode("bob-laptop", NodeOptions{AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: bob.ID, TTL: time.Hour})})
	for _, n := range []*Node{cm.ann, cm.bob} {
		if err := n.WaitFor(20*time.Second, func(nm *controlclient.Netmap) bool { return nm != nil }); err != nil {
			t.Fatalf("%s: no netmap: %v", n.Name, err)
		}
	}
	return cm
}

// signInLocal signs u in through the console's real pages in b: the
// sign-in button, the choice of methods, the local form with the password
// and a TOTP code computed from u's secret, and the link back.
func signInLocal(t *testing.T, b *browser.Browser, base string, u consoletest.User) {
	t.Helper()
	b.Do("open the console", chromedp.Navigate(base+"/admin/"), chromedp.WaitVisible(chromedp.CSS(`form[action="/admin/login"] button`)))
	// With a choice of methods, a page offers them; with local accounts
	// alone, the form comes at once.
	clickAndLoad(b, "begin signing in", `form[action="/admin/login"] button`)
	if browser.Get(b, "is there a choice", chromedp.Evaluate[bool](`!document.querySelector("#password")`)) {
		clickAndLoad(b, "choose the local account", `a[href*="/login/local/"]`)
	}
	b.Do("fill the local form",
		chromedp.WaitVisible(chromedp.CSS("#password")),
		chromedp.SendKeys(chromedp.CSS("#user"), u.Name),
		chromedp.SendKeys(chromedp.CSS("#password"), u.Password))
	// The code of the step now, made last: the coordinator takes the
	// steps either side of its own, so a step boundary passing before it
	// checks the code does no harm (each test signs each user in once).
	code, err := totp.GenerateCode(u.TOTP.Secret, time.Now())
	must(t, err)
	b.Do("type the TOTP code", chromedp.SendKeys(chromedp.CSS("#code"), code))
	clickAndLoad(b, "send the local form", `form button[type="submit"]`)
	clickAndLoad(b, "continue to the console", "#continue")
	b.Do("signed in", chromedp.WaitVisible(chromedp.CSS("form.signout")))
}

// clickAndLoad clicks the element sel selects and waits for the page the
// click leads to (after any redirects) to load.
func clickAndLoad(b *browser.Browser, what, sel string) {
	browser.Get(b, what, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.CSS(sel))))
}

// signInOIDC signs username in at the OpenID Provider through the choice
// page in b.
func signInOIDC(t *testing.T, b *browser.Browser, base, username string) {
	t.Helper()
	b.Do("open the console", chromedp.Navigate(base+"/admin/"), chromedp.WaitVisible(chromedp.CSS(`form[action="/admin/login"] button`)))
	clickAndLoad(b, "begin signing in", `form[action="/admin/login"] button`)
	clickAndLoad(b, "choose single sign-on", `a:not([href*="/login/local/"])`)
	b.Do("sign in at the provider",
		chromedp.WaitVisible(chromedp.CSS(`input[name="username"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), username),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), oidctest.Password))
	browser.Get(b, "send the provider's form", chromedp.WaitEvent(page.LoadEventFired, nil,
		chromedp.Submit(chromedp.CSS(`input[name="username"]`))))
	clickAndLoad(b, "continue to the console", "#continue")
	b.Do("signed in", chromedp.WaitVisible(chromedp.CSS("form.signout")))
}

// setEditor replaces the policy editor's text as typing would (a
// CodeMirror transaction), which makes the editor validate it.
func setEditor(b *browser.Browser, src string) {
	js, _ := json.Marshal(src)
	b.Do("edit the policy", chromedp.WaitVisible(chromedp.CSS(".policy-editor-ready #policy-editor")),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
			const v = %s;
			v.dispatch({changes: {from: 0, to: v.state.doc.length, insert: %s}});
		})()`, editorView, js)))
}

// editorView is a script expression for the page's CodeMirror view (in
// the shadow root of #policy-editor).
const editorView = `WarrenCM.EditorView.findFromDOM(document.getElementById("policy-editor").shadowRoot.querySelector(".cm-editor"))`

// cspErrors returns the browser's errors from console pages about the
// Content-Security-Policy or scripts.
func cspErrors(b *browser.Browser) []string {
	var out []string
	for _, e := range b.Errors() {
		if strings.Contains(e, "Content Security Policy") || strings.Contains(e, "uncaught exception") {
			out = append(out, e)
		}
	}
	return out
}

const consolePolicy = `// Who may reach what.
{
	"acls": [
		// Everyone reaches their own devices.
		{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]},
	],
	"tests": [
		{"src": "ann@example.com", "deny": ["bob@example.com:22"]},
	],
}
`

// TestConsolePolicyInBrowser: an admin signs in (local + TOTP), edits the
// policy with a typo (the error appears at its line, live in the editor
// and in the page, and the policy in force is unchanged), previews the
// fixed draft (the nodes whose access changes), saves it (a node's access
// changes within 1 s), reads the diff in the history and asks explain.
func TestConsolePolicyInBrowser(t *testing.T) {
	cm := newConsoleMesh(t, consolePolicy)
	b := browser.New(t, browserLimit)
	signInLocal(t, b, cm.URL, cm.admin)
	inForce := cm.Coord.Policy().Status()

	b.Do("open the policy editor", chromedp.Navigate(cm.URL+"/admin/policy"), chromedp.WaitVisible(chromedp.CSS(".policy-editor-ready #policy-editor")))
	b.Screenshot("policy")

	// A typo on line 5: "acept".
	typo := strings.Replace(consolePolicy, `"accept", "src": ["autogroup:member"]`, `"acept", "src": ["autogroup:member"]`, 1)
	setEditor(b, typo)
	// The editor validates on the server as one types: the status line
	// and a marker in the gutter beside line 5.
	b.Do("the editor shows the error", chromedp.WaitVisible(chromedp.CSS("#policy-live.bad")))
	if live := b.Text("#policy-live"); !strings.Contains(live, "first at line 5:") {
		t.Fatalf("live diagnostics %q, want the error at line 5", live)
	}
	line := browser.Get(b, "line of the gutter marker", chromedp.Poll[int](`(() => {
		const v = `+editorView+`;
		const m = v.dom.querySelector(".cm-lint-marker-error");
		if (!m) return 0;
		const r = m.getBoundingClientRect();
		return v.state.doc.lineAt(v.lineBlockAtHeight(r.top + r.height / 2 - v.documentTop).from).number;
	})()`, chromedp.WithPollingTimeout(20*time.Second)))
	b.Screenshot("policy-error")
	if line != 5 {
		t.Fatalf("the error marker is beside line %d, want 5", line)
	}

	clickAndLoad(b, "validate on the server", "#policy-validate")
	if pos := b.Text("#policy-check .diagnostics li.error .pos"); !strings.HasPrefix(pos, "5:") {
		t.Fatalf("the page lists the error at %q, want line 5", pos)
	}
	clickAndLoad(b, "save the broken draft", ".policy-editor-ready #policy-save")
	b.Do("refused", chromedp.WaitVisible(chromedp.CSS("#policy-save-error")))
	if st := cm.Coord.Policy().Status(); st.Hash != inForce.Hash {
		t.Fatalf("a draft with a typo changed the policy in force: %s, was %s", st.Hash, inForce.Hash)
	}
	if src, err := os.ReadFile(cm.PolicyPath); err != nil || string(src) != consolePolicy {
		t.Fatalf("a draft with a typo changed the policy file (%v):\n%s", err, src)
	}

	// The fix lets ann reach bob's laptop on 22 (and the test says so).
	fixed := strings.Replace(consolePolicy, "\t],\n\t\"tests\"", "\t\t{\"action\": \"accept\", \"src\": [\"ann@example.com\"], \"dst\": [\"bob@example.com:22\"]},\n\t],\n\t\"tests\"", 1)
	fixed = strings.Replace(fixed, `"deny": ["bob@example.com:22"]`, `"accept": ["bob@example.com:22"]`, 1)
	b.Do("reopen the editor", chromedp.Navigate(cm.URL+"/admin/policy"), chromedp.WaitVisible(chromedp.CSS(".policy-editor-ready #policy-editor")))
	setEditor(b, fixed)
	b.Do("the editor finds it valid", chromedp.WaitVisible(chromedp.CSS("#policy-live.good")))
	clickAndLoad(b, "preview", "#policy-preview")
	preview := b.Text("#policy-preview-result")
	for _, want := range []string{`+		{"action": "accept", "src": ["ann@example.com"], "dst": ["bob@example.com:22"]},`, "ann-laptop", "bob-laptop"} {
		if !strings.Contains(preview, want) {
			t.Fatalf("preview lacks %q:\n%s", want, preview)
		}
	}
	b.Screenshot("policy-preview")
	if hasPeer(cm.ann.Netmap(), "bob-laptop") {
		t.Fatal("ann's laptop has bob's as a peer before the save")
	}
	clicked := time.Now()
	clickAndLoad(b, "save", ".policy-editor-ready #policy-save")
	b.Do("saved", chromedp.WaitVisible(chromedp.CSS("#policy-saved")))
	saved := time.Now()
	if err := cm.ann.WaitFor(10*time.Second, HasPeers("bob-laptop")); err != nil {
		t.Fatalf("ann's laptop never got bob's as a peer: %v", err)
	}
	// The bound: the node's access changes within 1 s of the save
	// (the policy is in force when the page says saved; what remains is
	// the push to the node).
	afterSave, afterClick := time.Since(saved), time.Since(clicked)
	t.Logf("ann's laptop had bob's as a peer %v after the page said saved (%v after the click)", afterSave, afterClick)
	if afterSave > time.Second {
		t.Errorf("the node's access changed %v after the save, want within 1 s", afterSave)
	}
	if st := cm.Coord.Policy().Status(); st.Author != "user:root@example.com" || st.Source != fixed {
		t.Fatalf("in force after the save: author %q, source\n%s", st.Author, st.Source)
	}

	b.Do("open the history", chromedp.Navigate(cm.URL+"/admin/policy/history"), chromedp.WaitVisible(chromedp.CSS("#policy-history")))
	if h := b.Text("#policy-history tbody tr"); !strings.Contains(h, "user:root@example.com") {
		t.Fatalf("newest version in the history: %q", h)
	}
	b.Screenshot("policy-history")
	clickAndLoad(b, "open the newest diff", "#policy-history tbody tr a")
	if d := b.Text("pre.diff .diff-add"); !strings.Contains(d, `"dst": ["bob@example.com:22"]`) {
		t.Fatalf("the diff's first added line: %q", d)
	}
	b.Screenshot("policy-diff")

	b.Do("explain", chromedp.Navigate(cm.URL+"/admin/policy/explain"), chromedp.WaitVisible(chromedp.CSS("form.explain")),
		chromedp.SendKeys(chromedp.CSS(`input[name="src"]`), "ann-laptop"),
		chromedp.SendKeys(chromedp.CSS(`input[name="dst"]`), "bob-laptop"),
		chromedp.SendKeys(chromedp.CSS(`input[name="port"]`), "22"))
	clickAndLoad(b, "ask", "form.explain button")
	if a := b.Text("#explain-answer"); !strings.Contains(a, "Allowed") || !strings.Contains(a, "By rule 2 (line 6)") {
		t.Fatalf("explain: %q", a)
	}
	b.Screenshot("policy-explain")
	if errs := cspErrors(b); len(errs) != 0 {
		t.Fatalf("script errors or CSP violations: %q", errs)
	}
}

func hasPeer(nm *controlclient.Netmap, name string) bool {
	return nm != nil && HasPeers(name)(nm)
}

// TestConsoleAdminInBrowser: an admin signs in (local + TOTP), creates a
// pre-auth key for ann (the secret shown once, then only its prefix), a
// laptop joins with it and waits for approval, the admin approves it on
// its page and the laptop gets its peers.
func TestConsoleAdminInBrowser(t *testing.T) {
	m := New(t, Options{Policy: openPolicy, LocalLogin: true,
		Coordinator: coordinator.Config{RequireApproval: true, ConsoleInsecureCookies: true}})
	ann := m.User("ann@example.com")
	root := consoletest.NewUser(t, m.Coord.Registry(), "root@example.com", store.RoleAdmin, true)
	server := m.AddNode("server", NodeOptions{Tags: []string{"tag:server"},
		AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID, Tags: []string{"tag:server"}})})
	must(t, server.WaitFor(wait, func(nm *controlclient.Netmap) bool { return nm.Self.ID != 0 }))

	b := browser.New(t, browserLimit)
	signInLocal(t, b, m.URL, root)
	b.Do("open the overview", chromedp.Navigate(m.URL+"/admin/overview"), chromedp.WaitVisible(chromedp.CSS("main h1")))
	b.Screenshot("overview")

	b.Do("create a key for ann", chromedp.Navigate(m.URL+"/admin/keys"), chromedp.WaitVisible(chromedp.CSS(`form[action="/admin/keys"]`)),
		chromedp.SetValue(chromedp.CSS(`select[name="user"]`), fmt.Sprint(ann.ID)),
		chromedp.SendKeys(chromedp.CSS(`input[name="expiry"]`), "1h"))
	clickAndLoad(b, "create the key", `form[action="/admin/keys"] button`)
	secret := b.Text("code.key[data-secret]")
	prefix := b.Text(".secret p code")
	if secret == "" || !strings.HasPrefix(secret, prefix) {
		t.Fatalf("created key %q with prefix %q", secret, prefix)
	}
	b.Do("reopen the keys page", chromedp.Navigate(m.URL+"/admin/keys"), chromedp.WaitVisible(chromedp.CSS("table tbody")))
	page := b.Text("main")
	if strings.Contains(page, secret) || !strings.Contains(page, prefix) {
		t.Fatalf("the keys page again: shows the secret %v, shows the prefix %v", strings.Contains(page, secret), strings.Contains(page, prefix))
	}
	b.Screenshot("keys")

	laptop := m.AddNode("laptop", NodeOptions{AuthKey: secret})
	must(t, laptop.WaitFor(wait, func(nm *controlclient.Netmap) bool { return nm.Self.ID != 0 }))
	if len(laptop.Netmap().Peers) != 0 {
		t.Fatal("a pending node has peers")
	}
	b.Do("find the laptop pending", chromedp.Navigate(m.URL+"/admin/nodes"), chromedp.WaitVisible(chromedp.CSS("main table")))
	if nodes := b.Text("main table"); !strings.Contains(nodes, "laptop") || !strings.Contains(nodes, "pending approval") {
		t.Fatalf("the nodes page: %q", nodes)
	}
	b.Screenshot("nodes")
	clickAndLoad(b, "open the laptop's page", fmt.Sprintf(`a[href="/admin/nodes/%d"]`, laptop.Netmap().Self.ID))
	clickAndLoad(b, "approve the laptop", `form[action$="/approve"] button`)
	if done := b.Text("p.done"); !strings.Contains(done, "approved") {
		t.Fatalf("after approving: %q", done)
	}
	b.Screenshot("node")
	must(t, laptop.WaitFor(wait, HasPeers("server")))
	if errs := cspErrors(b); len(errs) != 0 {
		t.Fatalf("script errors or CSP violations: %q", errs)
	}
}

// TestConsoleMemberInBrowser: a member signs in through the OpenID
// Provider and sees their own devices only; an admin page answers 403,
// and so does an admin form posted from the member's session with the
// member's own CSRF token; both refusals are audited as the member.
func TestConsoleMemberInBrowser(t *testing.T) {
	m := New(t, Options{Policy: openPolicy, LocalLogin: true, Coordinator: coordinator.Config{ConsoleInsecureCookies: true},
		OIDC: &OIDCOptions{Users: []oidctest.User{{Subject: "sub-mia", Username: "mia", Email: "mia@example.com", EmailVerified: true}}}})
	ann, mia := m.User("ann@example.com"), m.User("mia@example.com")
	for _, n := range []*Node{
		m.AddNode("ann-laptop", NodeOptions{AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID, TTL: time.Hour})}),
		m.AddNode("mia-phone", NodeOptions{AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: mia.ID, TTL: time.Hour})}),
	} {
		must(t, n.WaitFor(wait, func(nm *controlclient.Netmap) bool { return nm.Self.ID != 0 }))
	}

	b := browser.New(t, browserLimit)
	signInOIDC(t, b, m.URL, "mia")
	b.Do("open my devices", chromedp.Navigate(m.URL+"/admin/me/devices"), chromedp.WaitVisible(chromedp.CSS("main")))
	mine := b.Text("main")
	if !strings.Contains(mine, "mia-phone") || strings.Contains(mine, "ann-laptop") {
		t.Fatalf("my devices page of mia:\n%s", mine)
	}
	b.Screenshot("my-devices")
	if nav := b.Text("header"); strings.Contains(nav, "Policy") || strings.Contains(nav, "Nodes") {
		t.Fatalf("a member's navigation offers admin pages: %q", nav)
	}

	resp := browser.Get(b, "open an admin page", chromedp.NavigateResponse(m.URL+"/admin/nodes"))
	if resp.Status != 403 || strings.Contains(b.Text("main"), "ann-laptop") {
		t.Fatalf("a member opened /admin/nodes: %d", resp.Status)
	}
	b.Screenshot("member-forbidden")
	// An admin form, posted from the member's own page with the member's
	// own CSRF token, as a crafted page or a curious member would.
	b.Do("back to a page of the member's", chromedp.Navigate(m.URL+"/admin/me/devices"), chromedp.WaitVisible(chromedp.CSS("main")))
	browser.Get(b, "post an admin form", chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
		const f = document.createElement("form");
		f.method = "post";
		f.action = "/admin/keys";
		for (const [k, v] of [["csrf", document.querySelector('meta[name="csrf-token"]').content], ["user", "%d"], ["expiry", "1h"]]) {
			const i = document.createElement("input");
			i.type = "hidden"; i.name = k; i.value = v;
			f.appendChild(i);
		}
		document.body.appendChild(f);
		f.submit();
	})()`, mia.ID))))
	if main := b.Text("main"); !strings.Contains(main, "admin pages are for admins") {
		t.Fatalf("after posting an admin form: %q", main)
	}
	keys, err := m.Coord.Store().ListAuthKeys(context.Background())
	must(t, err)
	if len(keys) != 2 {
		t.Fatalf("%d pre-auth keys after the member's post, want the 2 the test made", len(keys))
	}
	evs, err := m.Coord.Store().ListAudit(context.Background(), store.AuditFilter{Action: "console.forbidden", Actor: "user:mia@example.com"})
	must(t, err)
	var targets []string
	for _, e := range evs {
		targets = append(targets, e.Target)
	}
	if !slices.Contains(targets, "GET /admin/nodes") || !slices.Contains(targets, "POST /admin/keys") {
		t.Fatalf("audited refusals of the member: %q", targets)
	}
	if errs := cspErrors(b); len(errs) != 0 {
		t.Fatalf("script errors or CSP violations: %q", errs)
	}
}
