// Package consoletest signs people in to a real coordinator's web console
// for tests, through the real pages: the console's sign-in page, the local
// method's password + TOTP form, and back to the console, with Go's cookie
// jar as the browser. The coordinator must run with local login
// (coordinator.LoginConfig.Local) and ConsoleInsecureCookies (the jar
// keeps Secure cookies to HTTPS only).
//
// It is for tests only, and must never be imported by anything that
// serves.
package consoletest

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/tstest/oidctest"
)

// Wait bounds every request a Browser makes (a failure bound, never a
// measurement).
const Wait = 20 * time.Second

// setup is the actor that creates test users.
var setup = registry.Actor{Name: "test:consoletest", Admin: true}

// User is a local user with a password and, for admins and whoever asks,
// a TOTP secret.
type User struct {
	store.User
	Password string
	TOTP     *TOTP // nil: no second factor
}

// NewUser creates a local user named name with role (store.RoleAdmin or
// store.RoleMember) in reg, sets a password and, if withTOTP (admins must
// have it), enrolls a TOTP secret.
func NewUser(t testing.TB, reg *registry.Registry, name string, role store.Role, withTOTP bool) User {
	t.Helper()
	ctx := context.Background()
	u, err := reg.CreateUser(ctx, setup, store.User{Name: name, Email: name, Role: role})
	if err != nil {
		t.Fatalf("create user %s: %v", name, err)
	}
	out := User{User: u, Password: "correct horse battery staple " + name}
	if err := reg.SetUserPassword(ctx, setup, u.ID, out.Password); err != nil {
		t.Fatalf("set password of %s: %v", name, err)
	}
	if withTOTP {
		secret, _, err := reg.EnrollUserTOTP(ctx, setup, u.ID, "")
		if err != nil {
			t.Fatalf("enroll TOTP of %s: %v", name, err)
		}
		out.TOTP = &TOTP{Secret: secret}
	}
	return out
}

// TOTP hands out codes of one secret for increasing time steps, as the
// coordinator accepts each step once: now's step, then the next (the
// coordinator allows one step of skew either way). It never uses the step
// before now's, which a step boundary passing before the coordinator
// checks the code would push out of the window; a third sign-in of one
// user within a step waits for the next step.
type TOTP struct {
	Secret string

	mu   sync.Mutex
	last int64
}

// Code returns a code for the next unused step at or after now's.
func (c *TOTP) Code(t testing.TB) string {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := time.Now().Unix() / 30
	step := max(c.last+1, cur)
	for step > cur+1 { // both usable steps are spent: wait for the next one
		time.Sleep(time.Until(time.Unix((cur+1)*30, 0)))
		cur = time.Now().Unix() / 30
	}
	code, err := totp.GenerateCodeCustom(c.Secret, time.Unix(step*30, 0),
		totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	c.last = step
	return code
}

// Browser is a cookie-keeping HTTP client signed in to the console.
type Browser struct {
	// Base is the coordinator's URL ("http://127.0.0.1:1234").
	Base string
	// HTTP keeps the session cookie; it follows redirects.
	HTTP *http.Client
	// CSRF is the session's token, for forms (field "csrf").
	CSRF string
}

// NewBrowser returns a Browser with an empty cookie jar (signed in to
// nothing).
func NewBrowser(base string) *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{Base: strings.TrimSuffix(base, "/"), HTTP: &http.Client{Jar: jar, Timeout: Wait}}
}

// SignIn signs u in to the console at base through the real pages and
// returns the signed-in browser.
func SignIn(t testing.TB, base string, u User) *Browser {
	t.Helper()
	b := NewBrowser(base)
	if err := b.SignIn(t, u); err != nil {
		t.Fatalf("sign %s in to the console: %v", u.Name, err)
	}
	return b
}

var (
	csrfMeta  = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)
	localLink = regexp.MustCompile(`href="([^"]*/login/local/[^"]+)"`)
	formPost  = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
)

// SignIn signs u in with this browser (ending any session it had) and
// sets CSRF. It returns an error (rather than failing t) when a page
// refuses, so tests can check refusals.
func (b *Browser) SignIn(t testing.TB, u User) error {
	t.Helper()
	// The console's sign-in page sends the browser to the method.
	resp, body, err := b.do(http.MethodPost, "/admin/login", url.Values{"next": {"/admin/"}})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("begin: %s: %s", resp.Status, body)
	}
	// With a choice of methods, take the local one.
	if m := localLink.FindStringSubmatch(body); m != nil && !strings.Contains(resp.Request.URL.Path, "/login/local/") {
		if resp, body, err = b.do(http.MethodGet, html.UnescapeString(m[1]), nil); err != nil {
			return err
		}
	}
	m := formPost.FindStringSubmatch(body)
	if m == nil || !strings.Contains(resp.Request.URL.Path, "/login/local/") {
		return fmt.Errorf("no local sign-in form at %s (%s): %.300s", resp.Request.URL, resp.Status, body)
	}
	form := url.Values{"user": {u.Name}, "password": {u.Password}}
	if u.TOTP != nil {
		form.Set("code", u.TOTP.Code(t))
	}
	resp, body, err = b.do(http.MethodPost, html.UnescapeString(m[1]), form)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/admin/login/finish" {
		return fmt.Errorf("sign-in form: %s at %s: %.300s", resp.Status, resp.Request.URL.Path, body)
	}
	// The finish page links on; the home page carries the CSRF token.
	return b.readCSRF()
}

// SignInOIDC signs in with this browser at an OpenID Provider from
// package oidctest (the coordinator's only method, or the first link of
// its choice page) as username, and sets CSRF.
func (b *Browser) SignInOIDC(t testing.TB, username string) error {
	t.Helper()
	resp, body, err := b.do(http.MethodPost, "/admin/login", url.Values{"next": {"/admin/"}})
	if err != nil {
		return err
	}
	if strings.Contains(resp.Request.URL.Path, "/login/choose/") {
		links := oidctest.Links(body)
		if len(links) == 0 {
			return fmt.Errorf("choice page without links: %.300s", body)
		}
		if resp, body, err = b.do(http.MethodGet, links[0], nil); err != nil {
			return err
		}
	}
	action, values, err := oidctest.ParseForm(body)
	if err != nil {
		return fmt.Errorf("provider's form at %s (%s): %w", resp.Request.URL, resp.Status, err)
	}
	target, err := resp.Request.URL.Parse(action)
	if err != nil {
		return err
	}
	values.Set("username", username)
	values.Set("password", oidctest.Password)
	resp, body, err = b.do(http.MethodPost, target.String(), values)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/admin/login/finish" {
		return fmt.Errorf("after the provider: %s at %s: %.300s", resp.Status, resp.Request.URL.Path, body)
	}
	return b.readCSRF()
}

// readCSRF reads the session's CSRF token from the home page.
func (b *Browser) readCSRF() error {
	resp, body, err := b.do(http.MethodGet, "/admin/", nil)
	if err != nil {
		return err
	}
	mm := csrfMeta.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || mm == nil {
		return fmt.Errorf("after sign-in, /admin/: %s at %s: %.300s", resp.Status, resp.Request.URL.Path, body)
	}
	b.CSRF = html.UnescapeString(mm[1])
	return nil
}

// Get fetches path (on Base unless absolute) and returns the response
// (body closed) and its body.
func (b *Browser) Get(t testing.TB, path string) (*http.Response, string) {
	t.Helper()
	resp, body, err := b.do(http.MethodGet, path, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp, body
}

// Post posts form to path with the session's CSRF token (unless form
// sets "csrf" itself) and returns the response (after redirects; body
// closed) and its body.
func (b *Browser) Post(t testing.TB, path string, form url.Values) (*http.Response, string) {
	t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", b.CSRF)
	}
	resp, body, err := b.do(http.MethodPost, path, form)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	return resp, body
}

// do sends one request (a form post when form is not nil).
func (b *Browser) do(method, path string, form url.Values) (*http.Response, string, error) {
	target := path
	if !strings.HasPrefix(path, "http://") && !strings.HasPrefix(path, "https://") {
		target = b.Base + path
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		return nil, "", err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.HTTP.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return resp, string(data), err
}
