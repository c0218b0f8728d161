package oidc

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/login"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/tstest/poll"
)

// TestWaitUnknownURL refuses URLs Begin did not hand out for the machine.
func TestWaitUnknownURL(t *testing.T) {
	h := newHarness(t)
	m, loginURL := h.begin()
	other := key.NewMachine().Public()
	for name, tc := range map[string]struct {
		machine key.MachinePublic
		url     string
	}{
		"never issued":        {m, h.url + StartPath + "NOTISSUED"},
		"another machine's":   {other, loginURL},
		"not a login URL":     {m, "https://example.com/whatever"},
		"empty":               {m, ""},
		"other coordinator's": {m, strings.Replace(loginURL, h.url, "http://127.0.0.2:1", 1)},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := h.login.Wait(ctx, tc.machine, tc.url); !errors.Is(err, ErrUnknownLogin) {
				t.Fatalf("Wait: %v, want ErrUnknownLogin", err)
			}
			expectDenied(t, h, "unknown or expired login URL")
		})
	}
}

// TestWaitEndsWithContext returns when the caller gives up, and the login
// can still be waited for afterwards.
func TestWaitEndsWithContext(t *testing.T) {
	h := newHarness(t)
	m, loginURL := h.begin()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.login.Wait(ctx, m, loginURL); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with a cancelled context: %v", err)
	}
	waited := h.waitAsync(m, loginURL)
	newBrowser(t).Login(loginURL, "ann")
	if res := <-waited; res.err != nil {
		t.Fatalf("Wait after a cancelled Wait: %v", res.err)
	}
}

// TestLoginTimeout fails a login not completed in time; its link stops
// working.
func TestLoginTimeout(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.LoginTimeout = 50 * time.Millisecond })
	m, loginURL := h.begin()
	if _, err := h.login.Wait(context.Background(), m, loginURL); !errors.Is(err, ErrLoginTimeout) {
		t.Fatalf("Wait: %v, want ErrLoginTimeout", err)
	}
	if line := h.failLog.LastLine(); !strings.Contains(line, "not completed in time") {
		t.Fatalf("failure line = %s", line)
	}
	if evs := h.auditEvents(); len(evs) != 0 {
		t.Fatalf("a login nobody completed was stored: %+v", evs)
	}
	h.clock.Advance(time.Second)
	status, page, _ := newBrowser(t).Get(loginURL)
	if status != http.StatusBadRequest || !strings.Contains(page, "expired") {
		t.Fatalf("expired login link: %d %s", status, page)
	}
}

// TestBoundedPending caps the logins in progress and sweeps expired ones,
// waking their waiters.
func TestBoundedPending(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxPending = 3 })
	m, first := h.begin()
	waited := h.waitAsync(m, first)
	h.begin()
	h.begin()
	if _, err := h.login.Begin(context.Background(), key.NewMachine().Public(), "192.0.2.9:1"); !errors.Is(err, ErrTooManyLogins) {
		t.Fatalf("Begin over the limit: %v", err)
	}
	expectDenied(t, h, "too many")

	waitBlockedIn(t, "login.(*Table[...]).Wait(") // the sweep must wake it, not precede it
	h.clock.Advance(DefaultLoginTimeout)
	h.begin() // sweeps the three expired logins
	if res := <-waited; !errors.Is(res.err, ErrLoginTimeout) {
		t.Fatalf("Wait of a swept login: %+v", res)
	}
	if n := h.login.table.Len(); n != 1 {
		t.Fatalf("after the sweep: %d logins, want 1", n)
	}
}

// TestBoundedPerSource caps the logins in progress from one address, so
// one source cannot use up everybody's sign-ins (issue 11, defect 7).
func TestBoundedPerSource(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxPerSource = 2 })
	ctx := context.Background()
	for i := range 2 {
		if _, err := h.login.Begin(ctx, key.NewMachine().Public(), "198.51.100.7:"+strconv.Itoa(1000+i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.login.Begin(ctx, key.NewMachine().Public(), "198.51.100.7:2000"); !errors.Is(err, login.ErrTooManyFromSource) {
		t.Fatalf("third login from one address: %v", err)
	}
	if _, err := h.login.Begin(ctx, key.NewMachine().Public(), "198.51.100.8:2000"); err != nil {
		t.Fatalf("login from another address: %v", err)
	}
}

// TestSuperseded replaces a machine's unfinished login with its newer one.
func TestSuperseded(t *testing.T) {
	h := newHarness(t)
	m, first := h.begin()
	old := h.waitAsync(m, first)
	waitBlockedIn(t, "login.(*Table[...]).Wait(")
	second, err := h.login.Begin(context.Background(), m, "192.0.2.1:40000")
	if err != nil {
		t.Fatal(err)
	}
	if res := <-old; !errors.Is(res.err, ErrSuperseded) {
		t.Fatalf("outcome of the replaced login: %v", res.err)
	}
	if _, err := h.login.Wait(context.Background(), m, first); !errors.Is(err, ErrUnknownLogin) {
		t.Fatalf("Wait for the replaced login: %v", err)
	}
	if status, _, _ := newBrowser(t).Get(first); status != http.StatusBadRequest {
		t.Fatalf("replaced login link: %d", status)
	}
	waited := h.waitAsync(m, second)
	newBrowser(t).Login(second, "ann")
	if res := <-waited; res.err != nil {
		t.Fatalf("Wait of the newer login: %v", res.err)
	}
}

// TestStartTwice: opening the link again starts a fresh trip to the
// provider; only the newest state completes the login.
func TestStartTwice(t *testing.T) {
	h := newHarness(t)
	m, loginURL := h.begin()
	waited := h.waitAsync(m, loginURL)
	b := newBrowser(t)
	stale := b.SignIn(loginURL, "ann")
	fresh := b.SignIn(loginURL, "ann")
	if status, _, _ := b.Get(stale); status != http.StatusBadRequest {
		t.Fatalf("callback with the older state: %d", status)
	}
	if status, _, _ := b.Get(fresh); status != http.StatusOK {
		t.Fatalf("callback with the newest state: %d", status)
	}
	if res := <-waited; res.err != nil {
		t.Fatalf("Wait: %v", res.err)
	}
	// The login is over: the link no longer works.
	if status, page, _ := b.Get(loginURL); status != http.StatusBadRequest || !strings.Contains(page, "unknown or has expired") {
		t.Fatalf("finished login link: %d %s", status, page)
	}
}

// TestConcurrentLogins runs several logins at once against one Login.
func TestConcurrentLogins(t *testing.T) {
	h := newHarness(t)
	t.Run("group", func(t *testing.T) {
		for _, name := range []string{"ann", "bob", "cat", "ann"} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				m := key.NewMachine().Public()
				loginURL, err := h.login.Begin(context.Background(), m, "192.0.2.1:40000")
				if err != nil {
					t.Fatal(err)
				}
				waited := h.waitAsync(m, loginURL)
				if status, page := newBrowser(t).Login(loginURL, name); status != http.StatusOK {
					t.Fatalf("login: %d %s", status, page)
				}
				if res := <-waited; res.err != nil || !strings.HasPrefix(res.user.Name, name+"@") {
					t.Fatalf("Wait: %+v", res)
				}
			})
		}
	})
	users, err := h.st.ListUsers(context.Background())
	if err != nil || len(users) != 3 {
		t.Fatalf("users: %d, %v; want 3", len(users), err)
	}
}

// TestNewErrors checks configuration and discovery errors say what to fix.
func TestNewErrors(t *testing.T) {
	o := newTestOP(t, "http://127.0.0.1:1"+CallbackPath)
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "w.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	base := Config{Issuer: o.Issuer(), ClientID: clientWeb, RedirectURL: "https://warren.example.com" + CallbackPath,
		Store: st, Users: recorder{}, HTTPClient: client}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"ok", func(*Config) {}, ""},
		{"prefixed redirect", func(c *Config) { c.RedirectURL = "https://example.com/warren" + CallbackPath }, ""},
		{"missing fields", func(c *Config) { c.Issuer, c.Store = "", nil }, "missing Issuer, Store"},
		{"redirect not absolute", func(c *Config) { c.RedirectURL = CallbackPath }, "not an absolute"},
		{"redirect wrong path", func(c *Config) { c.RedirectURL = "https://example.com/cb" }, "must be the coordinator's public URL"},
		{"issuer mismatch", func(c *Config) { c.Issuer = o.Issuer() + "/" }, "says its issuer is"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.edit(&cfg)
			l, err := New(context.Background(), cfg)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if u, err := l.Begin(context.Background(), key.NewMachine().Public(), "192.0.2.1:40000"); err != nil || !strings.HasPrefix(u, strings.TrimSuffix(cfg.RedirectURL, CallbackPath)+StartPath) {
					t.Fatalf("Begin: %q, %v", u, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

// TestHandlerEdges covers requests that do not belong to a login.
func TestHandlerEdges(t *testing.T) {
	h := newHarness(t)
	b := newBrowser(t)
	if status, _, _ := b.Get(h.url + StartPath + "nope"); status != http.StatusBadRequest {
		t.Fatalf("unknown start: %d", status)
	}
	if status, _, _ := b.Get(h.url + CallbackPath); status != http.StatusBadRequest {
		t.Fatalf("callback without state: %d", status)
	}
	resp, err := b.Client.Post(h.url+CallbackPath, "application/x-www-form-urlencoded", strings.NewReader("state=x&code=y"))
	if err != nil {
		t.Fatal(err)
	}
	if status, _, _ := b.Read(resp); status != http.StatusMethodNotAllowed {
		t.Fatalf("POST callback: %d", status)
	}
	if _, err := h.login.Begin(context.Background(), key.MachinePublic{}, "192.0.2.1:40000"); err == nil {
		t.Fatal("Begin accepted a zero machine key")
	}
}

// waitBlockedIn waits until some goroutine is blocked in a select inside
// the function fn (as runtime stacks name it).
func waitBlockedIn(t *testing.T, fn string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	poll.UntilTrue(t, 10*time.Second, "a goroutine blocked in "+fn, func() bool {
		stacks := string(buf[:runtime.Stack(buf, true)])
		for _, g := range strings.Split(stacks, "\n\n") {
			if strings.Contains(g, "[select") && strings.Contains(g, fn) {
				return true
			}
		}
		return false
	})
}
