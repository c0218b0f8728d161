package oidclogin

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/html"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
)

// TestMain checks that no test leaves a goroutine behind.
func TestMain(m *testing.M) {
	// The provider's example login UI logs every request through the
	// default logger; keep the test output readable.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	goleak.VerifyTestMain(m)
}

// clock is a settable test clock, starting at the real time so that
// provider-issued tokens verify.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().Truncate(time.Second)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// harness is a coordinator login (Login + its handler on a test server)
// against a real test provider, with a SQLite store.
type harness struct {
	t     *testing.T
	op    *testOP
	st    store.Store
	login *Login
	url   string // the coordinator's base URL
	clock *clock

	mu      sync.Mutex
	changed []store.UserID // OnUserChanged calls
}

// newHarness starts a provider and a coordinator login configured for the
// provider's confidential client; opts adjust the Config before New.
func newHarness(t *testing.T, opts ...func(*Config)) *harness {
	t.Helper()
	ctx := context.Background()
	srv := httptest.NewUnstartedServer(nil)
	h := &harness{t: t, url: "http://" + srv.Listener.Addr().String(), clock: newClock()}
	h.op = newTestOP(t, h.url+CallbackPath)

	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "warren.db"), nil)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	h.st = st

	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	cfg := Config{
		Issuer:       h.op.issuer,
		ClientID:     clientWeb,
		ClientSecret: clientSecret,
		RedirectURL:  h.url + CallbackPath,
		Store:        st,
		Audit:        audit.New(st, nil),
		HTTPClient:   &http.Client{Transport: tr, Timeout: 10 * time.Second},
		Now:          h.clock.now,
		OnUserChanged: func(_ context.Context, id store.UserID) {
			h.mu.Lock()
			h.changed = append(h.changed, id)
			h.mu.Unlock()
		},
	}
	for _, o := range opts {
		o(&cfg)
	}
	h.login, err = New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv.Config.Handler = h.login.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	return h
}

// changedUsers returns the OnUserChanged calls so far.
func (h *harness) changedUsers() []store.UserID {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]store.UserID(nil), h.changed...)
}

// begin starts a login for a new machine.
func (h *harness) begin() (key.MachinePublic, string) {
	h.t.Helper()
	m := key.NewMachine().Public()
	u, err := h.login.Begin(context.Background(), m)
	if err != nil {
		h.t.Fatalf("Begin: %v", err)
	}
	return m, u
}

// waitResult is the outcome of an asynchronous Wait.
type waitResult struct {
	user store.User
	err  error
}

// waitAsync runs Wait in a goroutine that ends with the login (or after
// 30 s); receive from the channel to get its outcome.
func (h *harness) waitAsync(m key.MachinePublic, loginURL string) <-chan waitResult {
	ch := make(chan waitResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		u, err := h.login.Wait(ctx, m, loginURL)
		ch <- waitResult{u, err}
	}()
	return ch
}

// auditEvents returns the stored "login.oidc" events, oldest first.
func (h *harness) auditEvents() []store.AuditEvent {
	h.t.Helper()
	evs, err := h.st.ListAudit(context.Background(), store.AuditFilter{Action: auditAction})
	if err != nil {
		h.t.Fatalf("list audit: %v", err)
	}
	return evs
}

// lastAudit returns the newest "login.oidc" event.
func (h *harness) lastAudit() store.AuditEvent {
	h.t.Helper()
	evs := h.auditEvents()
	if len(evs) == 0 {
		h.t.Fatal("no login.oidc audit event")
	}
	newest := evs[0]
	for _, e := range evs {
		if e.ID > newest.ID {
			newest = e
		}
	}
	return newest
}

// browser is a scripted web browser: a cookie jar, redirects followed like
// a browser follows them, the provider's login form filled in and posted.
// It stops before the redirect to the coordinator's callback so tests can
// inspect or replay it.
type browser struct {
	t      *testing.T
	client *http.Client
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &browser{t: t, client: &http.Client{
		Jar: jar, Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Path == CallbackPath || len(via) > 10 {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}}
}

// get fetches u (following redirects except to the callback) and returns
// the final response's status, body and, for a redirect, its target.
func (b *browser) get(u string) (status int, body, location string) {
	b.t.Helper()
	resp, err := b.client.Get(u)
	if err != nil {
		b.t.Fatalf("GET %s: %v", u, err)
	}
	return b.read(resp)
}

func (b *browser) read(resp *http.Response) (int, string, string) {
	b.t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatalf("read %s: %v", resp.Request.URL, err)
	}
	loc := ""
	if l, err := resp.Location(); err == nil {
		loc = l.String()
	}
	return resp.StatusCode, string(body), loc
}

// signIn opens a login URL, signs in at the provider's form as username
// and returns the callback URL the provider redirects the browser to.
func (b *browser) signIn(loginURL, username string) string {
	b.t.Helper()
	resp, err := b.client.Get(loginURL)
	if err != nil {
		b.t.Fatalf("open login URL: %v", err)
	}
	formURL := resp.Request.URL
	status, page, _ := b.read(resp)
	if status != http.StatusOK {
		b.t.Fatalf("login page: status %d: %s", status, page)
	}
	action, fields := parseForm(b.t, page)
	fields.Set("username", username)
	fields.Set("password", testPassword)
	target, err := formURL.Parse(action)
	if err != nil {
		b.t.Fatalf("form action %q: %v", action, err)
	}
	resp, err = b.client.PostForm(target.String(), fields)
	if err != nil {
		b.t.Fatalf("post login form: %v", err)
	}
	status, page, loc := b.read(resp)
	if loc == "" || !strings.Contains(loc, CallbackPath) {
		b.t.Fatalf("after the login form: status %d, location %q, body %s", status, loc, page)
	}
	return loc
}

// login runs a whole browser login and returns the coordinator's final
// page.
func (b *browser) login(loginURL, username string) (int, string) {
	b.t.Helper()
	status, body, _ := b.get(b.signIn(loginURL, username))
	return status, body
}

// parseForm returns the action and the named input values of the first
// form in page.
func parseForm(t *testing.T, page string) (string, url.Values) {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatalf("parse login page: %v", err)
	}
	var form *html.Node
	var find func(*html.Node)
	find = func(n *html.Node) {
		if form != nil {
			return
		}
		if n.Type == html.ElementNode && n.Data == "form" {
			form = n
			return
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			find(c)
		}
	}
	find(doc)
	if form == nil {
		t.Fatalf("no form on the login page: %s", page)
	}
	fields := url.Values{}
	var inputs func(*html.Node)
	inputs = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "input" {
			if name := attr(n, "name"); name != "" {
				fields.Set(name, attr(n, "value"))
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			inputs(c)
		}
	}
	inputs(form)
	return attr(form, "action"), fields
}

func attr(n *html.Node, name string) string {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val
		}
	}
	return ""
}
