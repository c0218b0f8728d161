package coordinator_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/tstest/consoletest"
	"github.com/warrenmesh/warren/internal/tstest/testclock"
)

// consoleUsers is a console coordinator with an admin (password + TOTP)
// and a member (password), neither signed in yet.
type consoleUsers struct {
	*served
	admin, member consoletest.User
}

func consoleWithUsers(t *testing.T, cfg coordinator.Config) consoleUsers {
	t.Helper()
	s := consoleServe(t, cfg)
	return consoleUsers{served: s,
		admin:  consoletest.NewUser(t, s.c.Registry(), "root@example.com", store.RoleAdmin, true),
		member: consoletest.NewUser(t, s.c.Registry(), "bob@example.com", store.RoleMember, false)}
}

// auditCount counts the audit events matching f.
func auditCount(t *testing.T, s *served, f store.AuditFilter) int {
	t.Helper()
	evs, err := s.c.Store().ListAudit(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}

// noRedirects is a client that shows redirects instead of following them.
func noRedirects(jar http.CookieJar) *http.Client {
	return &http.Client{Jar: jar, Timeout: wait,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// send sends one request and returns the response (body read and closed)
// and its body.
func send(t *testing.T, hc *http.Client, method, u string, form url.Values, header http.Header) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, string(data)
}

// signedIn reports whether b's session still opens the home page.
func signedIn(t *testing.T, b *consoletest.Browser) bool {
	t.Helper()
	resp, _ := b.Get(t, "/admin/")
	return resp.StatusCode == http.StatusOK && resp.Request.URL.Path == "/admin/"
}

// TestConsoleRefusesForgedForms posts the sign-out form (the one form
// every session has) without its CSRF token, with a wrong one, with
// another session's, and from another site: each is refused with 403,
// audited with the person's identity, and changes nothing (the session
// lives on).
func TestConsoleRefusesForgedForms(t *testing.T) {
	s := consoleWithUsers(t, coordinator.Config{})
	b := consoletest.SignIn(t, s.url, s.member)
	other := consoletest.SignIn(t, s.url, s.admin)
	for _, tc := range []struct {
		name   string
		csrf   string
		header http.Header
	}{
		{"no token", "", nil},
		{"wrong token", "AAAA" + b.CSRF[4:], nil},
		{"another session's token", other.CSRF, nil},
		{"cross-site fetch", b.CSRF, http.Header{"Sec-Fetch-Site": {"cross-site"}}},
		{"same-site fetch (another origin)", b.CSRF, http.Header{"Sec-Fetch-Site": {"same-site"}}},
		{"foreign origin", b.CSRF, http.Header{"Origin": {"http://evil.example"}}},
		{"token in the query only", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := auditCount(t, s.served, store.AuditFilter{Action: "console.forbidden", Actor: "user:" + s.member.Name})
			target := s.url + "/admin/logout"
			if tc.name == "token in the query only" {
				target += "?csrf=" + url.QueryEscape(b.CSRF)
			}
			resp, _ := send(t, noRedirects(b.HTTP.Jar), http.MethodPost, target, url.Values{"csrf": {tc.csrf}}, tc.header)
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("status %d, want 403", resp.StatusCode)
			}
			if got := auditCount(t, s.served, store.AuditFilter{Action: "console.forbidden", Actor: "user:" + s.member.Name}); got != before+1 {
				t.Fatalf("%d console.forbidden events, want %d", got, before+1)
			}
			if !signedIn(t, b) {
				t.Fatal("the refused sign-out ended the session")
			}
		})
	}
	// The real form works.
	resp, _ := send(t, noRedirects(b.HTTP.Jar), http.MethodPost, s.url+"/admin/logout", url.Values{"csrf": {b.CSRF}},
		http.Header{"Sec-Fetch-Site": {"same-origin"}, "Origin": {s.url}})
	if resp.StatusCode != http.StatusSeeOther || signedIn(t, b) {
		t.Fatalf("sign-out with the token: %d, still signed in: %v", resp.StatusCode, signedIn(t, b))
	}
}

// TestConsoleSignInIsSameOrigin checks that another site cannot start a
// sign-in in someone's browser (to finish it as its own user).
func TestConsoleSignInIsSameOrigin(t *testing.T) {
	s := consoleWithUsers(t, coordinator.Config{})
	for _, h := range []http.Header{
		{"Sec-Fetch-Site": {"cross-site"}},
		{"Origin": {"http://evil.example"}},
	} {
		b := consoletest.NewBrowser(s.url)
		resp, _ := send(t, noRedirects(b.HTTP.Jar), http.MethodPost, s.url+"/admin/login", url.Values{"next": {"/admin/"}}, h)
		if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
			t.Fatalf("%v: %d with cookies %v, want 403 and none", h, resp.StatusCode, resp.Cookies())
		}
	}
}

// cookieRecorder records the cookies responses set, by request path.
type cookieRecorder struct {
	set map[string][]*http.Cookie
}

func (c *cookieRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil {
		c.set[r.URL.Path] = append(c.set[r.URL.Path], resp.Cookies()...)
	}
	return resp, err
}

// TestConsoleCookies checks the cookies a sign-in sets on the wire: the
// session cookie is HttpOnly, SameSite=Strict, for path / and the
// browser's session only; the pending sign-in's is HttpOnly and Lax (it
// must survive the provider's redirect back) and is spent at the finish.
// Secure and the __Host- prefix are checked in package console, since
// Go's jar keeps Secure cookies to HTTPS only.
func TestConsoleCookies(t *testing.T) {
	s := consoleWithUsers(t, coordinator.Config{})
	b := consoletest.NewBrowser(s.url)
	rec := &cookieRecorder{set: map[string][]*http.Cookie{}}
	b.HTTP.Transport = rec
	if err := b.SignIn(t, s.member); err != nil {
		t.Fatal(err)
	}
	find := func(path, name string) []*http.Cookie {
		var out []*http.Cookie
		for _, c := range rec.set[path] {
			if c.Name == name {
				out = append(out, c)
			}
		}
		return out
	}
	pending := find("/admin/login", "warren-console-login")
	if len(pending) != 1 || !pending[0].HttpOnly || pending[0].SameSite != http.SameSiteLaxMode || pending[0].Path != "/" {
		t.Fatalf("pending sign-in cookie: %+v", pending)
	}
	if spent := find("/admin/login/finish", "warren-console-login"); len(spent) != 1 || spent[0].MaxAge >= 0 {
		t.Fatalf("the pending cookie was not spent at the finish: %+v", spent)
	}
	sess := find("/admin/login/finish", "warren-console")
	if len(sess) != 1 {
		t.Fatalf("session cookies set at the finish: %+v", sess)
	}
	c := sess[0]
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.MaxAge != 0 || !c.Expires.IsZero() || c.Domain != "" || len(c.Value) < 43 {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/, no lifetime, no domain, a 256-bit value", c)
	}
}

// fill turns a route's path into a request path: each wildcard becomes 1.
func fill(path string) string {
	path = strings.ReplaceAll(path, "{$}", "")
	return regexp.MustCompile(`\{[^}]*\}`).ReplaceAllString(path, "1")
}

// inlineScript finds a script element without a src, or with a body.
var scriptTag = regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script>`)

// getPage fetches u and reads its body, except a stream of server-sent
// events, which never ends: its headers are what counts.
func getPage(t *testing.T, hc *http.Client, u string) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp, ""
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return resp, string(data)
}

// TestConsoleCSPEveryPage walks every GET route of the console, signed
// in as an admin, as a member and as nobody, and checks each answer
// forbids inline script and framing, and carries none.
func TestConsoleCSPEveryPage(t *testing.T) {
	s := consoleWithUsers(t, coordinator.Config{})
	browsers := map[string]*http.Client{
		"admin":  noRedirects(consoletest.SignIn(t, s.url, s.admin).HTTP.Jar),
		"member": noRedirects(consoletest.SignIn(t, s.url, s.member).HTTP.Jar),
		"nobody": noRedirects(nil),
	}
	routes := s.c.Console().Routes()
	paths := 0
	for _, r := range routes {
		if r.Method != http.MethodGet && r.Method != "" {
			continue
		}
		path := fill(r.Path)
		if strings.HasSuffix(path, "/static/") {
			path += "console.css"
		}
		paths++
		for who, hc := range browsers {
			resp, body := getPage(t, hc, s.url+path)
			h := resp.Header
			csp := h.Get("Content-Security-Policy")
			if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "default-src 'none'") ||
				strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") ||
				!strings.Contains(csp, "frame-ancestors 'none'") {
				t.Errorf("%s GET %s: Content-Security-Policy %q", who, path, csp)
			}
			if h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%s GET %s: framing and sniffing headers %v", who, path, h)
			}
			for _, m := range scriptTag.FindAllStringSubmatch(body, -1) {
				if !strings.Contains(m[1], "src=") || strings.TrimSpace(m[2]) != "" {
					t.Errorf("%s GET %s: inline script %q", who, path, m[0])
				}
			}
			if strings.Contains(strings.ToLower(body), " on") && regexp.MustCompile(`(?i)<[^>]+\son[a-z]+=`).MatchString(body) {
				t.Errorf("%s GET %s: an inline event handler", who, path)
			}
		}
	}
	if paths < 3 {
		t.Fatalf("walked %d GET routes of %+v", paths, routes)
	}
}

// TestConsoleAnonymousLearnsNothing asks for every route of the console
// (and paths that are none) without a session, and with a forged or
// expired session cookie: every page answers with the same redirect to
// the sign-in page, every change with the same 401, and nothing names a
// user.
func TestConsoleAnonymousLearnsNothing(t *testing.T) {
	s := consoleWithUsers(t, coordinator.Config{})
	paths := []string{"/admin/no-such-page", "/admin/nodes/999999", "/admin/users/root@example.com", "/admin/%2e%2e/x"}
	for _, r := range s.c.Console().Routes() {
		if !r.Public {
			paths = append(paths, fill(r.Path))
		}
	}
	forged := []*http.Cookie{nil, {Name: "warren-console", Value: "forged"}, {Name: "warren-console", Value: strings.Repeat("A", 43)}}
	for _, c := range forged {
		for _, p := range paths {
			for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
				req, err := http.NewRequest(method, s.url+p, nil)
				if err != nil {
					t.Fatal(err)
				}
				if c != nil {
					req.AddCookie(c)
				}
				resp, err := noRedirects(nil).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if method == http.MethodGet {
					loc, _ := url.Parse(resp.Header.Get("Location"))
					if resp.StatusCode != http.StatusSeeOther || loc == nil || loc.Path != "/admin/login" {
						t.Errorf("GET %s (cookie %v): %d to %q, want 303 to the sign-in page", p, c, resp.StatusCode, resp.Header.Get("Location"))
					}
				} else if resp.StatusCode != http.StatusUnauthorized || string(body) != "sign in first\n" {
					t.Errorf("%s %s (cookie %v): %d %q, want 401 \"sign in first\"", method, p, c, resp.StatusCode, body)
				}
				for _, secret := range []string{s.admin.Name, s.member.Name, "ann@example.com"} {
					if strings.Contains(string(body), secret) || strings.Contains(resp.Header.Get("Location"), secret) && !strings.Contains(p, secret) {
						t.Errorf("%s %s answered with %q", method, p, secret)
					}
				}
			}
		}
	}
}

// TestConsoleSessionExpiry checks the idle and the absolute timeout on
// the console's own clock.
func TestConsoleSessionExpiry(t *testing.T) {
	const idle, maxAge = 30 * time.Minute, 2 * time.Hour
	clock := testclock.New(time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC))
	s := consoleWithUsers(t, coordinator.Config{ConsoleNow: clock.Now, ConsoleIdleTimeout: idle, ConsoleMaxAge: maxAge})
	for _, tc := range []struct {
		name string
		// steps of use: before each request the clock advances by one
		steps []time.Duration
		want  bool // still signed in after the last
	}{
		{"used within the idle time", []time.Duration{idle - time.Second}, true},
		{"idle too long", []time.Duration{idle + time.Second}, false},
		{"kept busy up to the absolute bound", []time.Duration{25 * time.Minute, 25 * time.Minute, 25 * time.Minute, 25 * time.Minute}, true},
		{"kept busy past the absolute bound", []time.Duration{25 * time.Minute, 25 * time.Minute, 25 * time.Minute, 25 * time.Minute, 25 * time.Minute}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A fresh session on the shared clock, which only moves on.
			b := consoletest.SignIn(t, s.url, s.member)
			for i, d := range tc.steps {
				clock.Advance(d)
				if got := signedIn(t, b); got != (tc.want || i < len(tc.steps)-1) {
					t.Fatalf("after step %d (%v): signed in %v", i, d, got)
				}
			}
		})
	}
}

// TestConsoleDisabledUserIsOut checks that disabling or deleting a user
// ends their sessions at once, and that a new sign-in also rotates the
// session ID.
func TestConsoleDisabledUserIsOut(t *testing.T) {
	s := consoleWithUsers(t, coordinator.Config{})
	ctx := context.Background()
	admin := registry.Actor{Name: "test:admin", Admin: true}

	b := consoletest.SignIn(t, s.url, s.member)
	if _, err := s.c.Registry().SetUserDisabled(ctx, admin, s.member.ID, true); err != nil {
		t.Fatal(err)
	}
	if signedIn(t, b) {
		t.Fatal("a disabled user's session still works")
	}
	if _, err := s.c.Registry().SetUserDisabled(ctx, admin, s.member.ID, false); err != nil {
		t.Fatal(err)
	}
	if signedIn(t, b) {
		t.Fatal("enabling the user again revived the old session")
	}

	carol := consoletest.NewUser(t, s.c.Registry(), "carol@example.com", store.RoleMember, false)
	b = consoletest.SignIn(t, s.url, carol)
	if err := s.c.Registry().DeleteUser(ctx, admin, carol.ID); err != nil {
		t.Fatal(err)
	}
	if signedIn(t, b) {
		t.Fatal("a deleted user's session still works")
	}
}

// TestConsoleSignInRotatesTheSession signs in twice in one browser: the
// second sign-in gets a new session ID and the first ID stops working.
func TestConsoleSignInRotatesTheSession(t *testing.T) {
	s := consoleWithUsers(t, coordinator.Config{})
	b := consoletest.SignIn(t, s.url, s.member)
	base, _ := url.Parse(s.url)
	first := b.HTTP.Jar.Cookies(base)
	if err := b.SignIn(t, s.member); err != nil {
		t.Fatal(err)
	}
	second := b.HTTP.Jar.Cookies(base)
	if len(first) != 1 || len(second) != 1 || first[0].Value == second[0].Value {
		t.Fatalf("session cookies before and after signing in again: %v, %v", first, second)
	}
	old := consoletest.NewBrowser(s.url)
	old.HTTP.Jar.SetCookies(base, first)
	if signedIn(t, old) {
		t.Fatal("the session before the new sign-in still works")
	}
	if !signedIn(t, b) {
		t.Fatal("the new session does not work")
	}
}

// TestConsoleMemberCannotAdmin asks for every admin route as a member,
// with a valid CSRF token for the changes: each is refused with 403 and
// audited with the member's identity.
func TestConsoleMemberCannotAdmin(t *testing.T) {
	s := consoleWithUsers(t, coordinator.Config{})
	b := consoletest.SignIn(t, s.url, s.member)
	hc := noRedirects(b.HTTP.Jar)
	n := 0
	for _, r := range s.c.Console().Routes() {
		if !r.Admin {
			continue
		}
		method := r.Method
		if method == "" {
			method = http.MethodGet
		}
		n++
		before := auditCount(t, s.served, store.AuditFilter{Action: "console.forbidden", Actor: "user:" + s.member.Name})
		var form url.Values
		if method != http.MethodGet {
			form = url.Values{"csrf": {b.CSRF}}
		}
		resp, body := send(t, hc, method, s.url+fill(r.Path), form, nil)
		if resp.StatusCode != http.StatusForbidden || strings.Contains(body, s.admin.Name) {
			t.Errorf("member %s %s: %d, want 403 revealing nothing", method, r.Path, resp.StatusCode)
		}
		if got := auditCount(t, s.served, store.AuditFilter{Action: "console.forbidden", Actor: "user:" + s.member.Name}); got != before+1 {
			t.Errorf("member %s %s: %d console.forbidden events, want %d", method, r.Path, got, before+1)
		}
	}
	t.Logf("%d admin routes refused", n)
}

// TestConsoleSignInLockout checks that the local method's own bounds
// apply through the console: five wrong passwords end a sign-in, and the
// (user, address) pair is then locked out even with the right password.
func TestConsoleSignInLockout(t *testing.T) {
	s := consoleWithUsers(t, coordinator.Config{})
	wrong := s.member
	wrong.Password = "not the password at all"
	b := consoletest.NewBrowser(s.url)
	err := b.SignIn(t, wrong)
	for i := 0; i < 10 && err != nil && !strings.Contains(err.Error(), "429 Too Many Requests"); i++ {
		err = b.SignIn(t, wrong)
	}
	if err == nil || !strings.Contains(err.Error(), "429 Too Many Requests") {
		t.Fatalf("wrong passwords through the console: %v", err)
	}
	if err := b.SignIn(t, s.member); err == nil || !strings.Contains(err.Error(), "429 Too Many Requests") {
		t.Fatalf("the right password while locked out: %v, want the lockout", err)
	}
	if n := auditCount(t, s.served, store.AuditFilter{Action: "login.local-lockout", Actor: "user:" + s.member.Name}); n == 0 {
		t.Fatal("no lockout audited")
	}
	if signedIn(t, b) {
		t.Fatal("signed in while locked out")
	}
}
