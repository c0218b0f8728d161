package local

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/login"
	"github.com/warrenmesh/warren/coordinator/store"
)

func TestLoginFlow(t *testing.T) {
	h := newHarness(t, nil)
	old := time.Unix(1_700_000_000, 0).UTC()
	ann := h.addUser(userSpec{name: "ann", password: true, totp: true})
	bob := h.addUser(userSpec{name: "bob", password: true, mfaAt: old})
	h.addUser(userSpec{name: "carol", role: store.RoleAdmin, password: true})
	dave := h.addUser(userSpec{name: "dave", role: store.RoleAdmin, password: true, totp: true})
	h.addUser(userSpec{name: "erin", password: true, disabled: true})
	h.addUser(userSpec{name: "frank", totp: true}) // an IdP user: no local password
	now := h.clock.Now()

	tests := []struct {
		name       string
		user       string
		password   string
		code       func() string
		wantStatus int
		wantBody   string
		wantReason string // audit reason of a denial; "" for success
		wantMFA    time.Time
		wantChange bool
		wantEnded  bool // a final refusal: the login ends (a choice's other methods too)
	}{
		{name: "member with TOTP", user: "ann", password: testPassword, code: func() string { return h.code(ann) },
			wantStatus: 200, wantBody: "Signed in as ann", wantMFA: now, wantChange: true},
		{name: "member without TOTP keeps MFAAt", user: "bob", password: testPassword,
			wantStatus: 200, wantBody: "Signed in as bob", wantMFA: old},
		{name: "code ignored for a user without TOTP", user: "bob", password: testPassword, code: func() string { return "123456" },
			wantStatus: 200, wantBody: "Signed in as bob", wantMFA: old},
		{name: "admin with TOTP", user: "dave", password: testPassword, code: func() string { return h.code(dave) },
			wantStatus: 200, wantBody: "Signed in as dave", wantMFA: now, wantChange: true},
		{name: "admin without TOTP refused", user: "carol", password: testPassword,
			wantStatus: 403, wantBody: "warren-coordinator users totp carol", wantReason: reasonAdminNoTOTP},
		{name: "disabled user refused", user: "erin", password: testPassword,
			wantStatus: 403, wantBody: "disabled", wantReason: reasonDisabled, wantEnded: true},
		{name: "user without a local password", user: "frank", password: testPassword, code: func() string { return "000000" },
			wantStatus: 401, wantBody: msgBadCredentials, wantReason: reasonNoPassword},
		{name: "unknown user", user: "mallory", password: testPassword,
			wantStatus: 401, wantBody: msgBadCredentials, wantReason: reasonUnknownUser},
		{name: "wrong password", user: "bob", password: "wrong password!",
			wantStatus: 401, wantBody: msgBadCredentials, wantReason: reasonBadPassword},
		{name: "missing code", user: "dave", password: testPassword,
			wantStatus: 401, wantBody: "6-digit code", wantReason: reasonMissingCode},
		{name: "wrong code", user: "dave", password: testPassword, code: func() string { return flip(h.code(dave)) },
			wantStatus: 401, wantBody: "Wrong or expired code", wantReason: reasonBadCode},
		{name: "expired code", user: "dave", password: testPassword,
			code:       func() string { return codeAt(t, dave.TOTPSecret, h.clock.Now().Add(-2*time.Minute)) },
			wantStatus: 401, wantBody: "Wrong or expired code", wantReason: reasonBadCode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine()
			u := h.begin(m)
			b := h.browser()
			h.openForm(b, u)
			code := ""
			if tt.code != nil {
				code = tt.code()
			}
			before := len(h.changedUsers())
			status, body := h.post(b, u, tt.user, tt.password, code)
			if status != tt.wantStatus || !strings.Contains(body, tt.wantBody) {
				t.Fatalf("POST = %d, want %d with %q\n%s", status, tt.wantStatus, tt.wantBody, body)
			}
			if strings.Contains(body, tt.password) {
				t.Fatal("response echoes the password")
			}
			if tt.wantReason == reasonUnknownUser {
				// A name that is no user: counted, never stored.
				if line := h.failLog.LastLine(); !strings.Contains(line, reasonUnknownUser) || strings.Contains(line, tt.user) {
					t.Fatalf("failure line %s, want %s without the name", line, reasonUnknownUser)
				}
				if !h.isLive(m, u) {
					t.Fatal("one failed attempt ended the login")
				}
				return
			}
			ev, detail := h.lastAudit(m)
			if tt.wantReason != "" {
				if ev.Outcome != audit.Denied || detail["reason"] != tt.wantReason {
					t.Fatalf("audit %+v, want denied with reason %s", ev, tt.wantReason)
				}
				if tt.wantEnded {
					if _, err := h.wait(m, u, 5*time.Second); !errors.Is(err, login.ErrAccountDisabled) {
						t.Fatalf("Wait = %v, want the login ended as %v", err, login.ErrAccountDisabled)
					}
					return
				}
				if !h.isLive(m, u) {
					t.Fatal("one failed attempt ended the login")
				}
				return
			}
			if ev.Outcome != audit.OK || ev.Actor != "user:"+tt.user || detail["mfa"] != !tt.wantMFA.Equal(old) {
				t.Fatalf("audit %+v %v, want ok for user:%s", ev, detail, tt.user)
			}
			got, err := h.wait(m, u, 5*time.Second)
			if err != nil {
				t.Fatalf("Wait: %v", err)
			}
			if got.Name != tt.user || !got.MFAAt.Equal(tt.wantMFA) {
				t.Fatalf("Wait = %s with MFAAt %v, want %s with %v", got.Name, got.MFAAt, tt.user, tt.wantMFA)
			}
			stored, err := h.st.GetUser(context.Background(), got.ID)
			if err != nil || !stored.MFAAt.Equal(tt.wantMFA) {
				t.Fatalf("stored MFAAt %v (%v), want %v", stored.MFAAt, err, tt.wantMFA)
			}
			changed := h.changedUsers()[before:]
			if tt.wantChange != slices.Contains(changed, got.ID) || len(changed) > 1 {
				t.Fatalf("users changed %v, want a call: %v", changed, tt.wantChange)
			}
			if _, err := h.wait(m, u, time.Second); !errors.Is(err, ErrUnknownLogin) {
				t.Fatalf("second Wait = %v, want ErrUnknownLogin (single use)", err)
			}
			if status, _ := h.get(b, u); status != http.StatusNotFound {
				t.Fatalf("GET after use = %d, want 404", status)
			}
		})
	}

	t.Run("audit never holds a secret", func(t *testing.T) {
		secrets := []string{testPassword, "wrong password!", ann.TOTPSecret, dave.TOTPSecret, "mallory"}
		for _, e := range h.audits() {
			all := fmt.Sprint(e)
			for _, s := range secrets {
				if strings.Contains(all, s) {
					t.Fatalf("audit event %+v contains %q", e, s)
				}
			}
		}
	})
	_ = bob
}

// flip changes the last digit of a code.
func flip(code string) string {
	last := code[len(code)-1]
	return code[:len(code)-1] + string('0'+(last-'0'+1)%10)
}

func TestWaitBlocksUntilSignIn(t *testing.T) {
	h := newHarness(t, nil)
	ann := h.addUser(userSpec{name: "ann", password: true, totp: true})
	m := newMachine()
	u := h.begin(m)
	type res struct {
		u   store.User
		err error
	}
	done := make(chan res, 1)
	go func() {
		got, err := h.wait(m, u, 10*time.Second)
		done <- res{got, err}
	}()
	b := h.browser()
	h.openForm(b, u)
	if status, body := h.post(b, u, "ann", testPassword, h.code(ann)); status != 200 {
		t.Fatalf("POST = %d\n%s", status, body)
	}
	r := <-done
	if r.err != nil || r.u.ID != ann.ID || !r.u.MFAAt.Equal(h.clock.Now()) {
		t.Fatalf("Wait = %+v, %v", r.u, r.err)
	}
}

func TestWrongPasswordEndsLogin(t *testing.T) {
	h := newHarness(t, nil)
	h.addUser(userSpec{name: "bob", password: true})
	for i := 1; i <= MaxAttemptsPerLogin; i++ {
		h.addUser(userSpec{name: fmt.Sprintf("user%d", i), password: true})
	}
	m := newMachine()
	u := h.begin(m)
	b := h.browser()
	h.openForm(b, u)
	for i := 1; i <= MaxAttemptsPerLogin; i++ {
		// Different names, so only the per-login limit applies.
		status, body := h.post(b, u, fmt.Sprintf("user%d", i), "wrong password!", "")
		if i < MaxAttemptsPerLogin && status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d\n%s", i, status, body)
		}
		if i == MaxAttemptsPerLogin && (status != http.StatusGone || !strings.Contains(body, "no longer works")) {
			t.Fatalf("last attempt: %d\n%s", status, body)
		}
	}
	// Even the right password no longer helps.
	if status, body := h.post(b, u, "bob", testPassword, ""); status != http.StatusGone {
		t.Fatalf("after the limit: %d\n%s", status, body)
	}
	if status, _ := h.get(b, u); status != http.StatusGone {
		t.Fatalf("GET after the limit = %d, want 410", status)
	}
	if _, err := h.wait(m, u, time.Second); !errors.Is(err, ErrTooManyAttempts) {
		t.Fatalf("Wait = %v, want ErrTooManyAttempts", err)
	}
	_, detail := h.lastAudit(m)
	if detail["loginEnded"] != true {
		t.Fatalf("last audit detail %v, want loginEnded", detail)
	}
}

func TestUserRateLimit(t *testing.T) {
	h := newHarness(t, nil)
	ann := h.addUser(userSpec{name: "ann", password: true, totp: true})
	// Five failures for "ann" spread over logins (and case variants),
	// all from one address.
	b := h.browser()
	for i, name := range []string{"ANN", "Ann", "ann", "ann", "ann"} {
		m := newMachine()
		u := h.begin(m)
		h.openForm(b, u)
		if status, _ := h.post(b, u, name, "wrong password!", h.code(ann)); status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i, status)
		}
	}
	m := newMachine()
	u := h.begin(m)
	h.openForm(b, u)
	status, body := h.post(b, u, "ann", testPassword, h.code(ann))
	if status != http.StatusTooManyRequests || !strings.Contains(body, "Too many failed sign-in attempts") {
		t.Fatalf("sixth attempt: %d\n%s", status, body)
	}
	if _, detail := h.lastAudit(m); detail["reason"] != reasonRateLimited {
		t.Fatalf("audit %v, want rate_limited", detail)
	}
	if evs, _ := h.st.ListAudit(context.Background(), store.AuditFilter{Action: LockoutAction}); len(evs) != 1 || !strings.Contains(evs[0].Detail, `"source":"127.0.0.1"`) {
		t.Fatalf("lockout alerts: %+v, want one for this address", evs)
	}
	// Other users are not affected.
	h.addUser(userSpec{name: "bob", password: true})
	if status, body := h.post(b, u, "bob", testPassword, ""); status != 200 {
		t.Fatalf("other user: %d\n%s", status, body)
	}
	// The lockout ends after LockoutBase.
	h.clock.Advance(LockoutBase)
	m = newMachine()
	u = h.begin(m)
	h.openForm(b, u)
	if status, body := h.post(b, u, "ann", testPassword, h.code(ann)); status != 200 {
		t.Fatalf("after the lockout: %d\n%s", status, body)
	}
	if _, err := h.wait(m, u, time.Second); err != nil {
		t.Fatal(err)
	}
}

// Anyone can fail as the break-glass admin from their own address, but
// that never locks the admin out from another one (issue 11, defect 7).
func TestLockoutIsPerSource(t *testing.T) {
	h := newHarness(t, nil)
	root := h.addUser(userSpec{name: "root@example.com", role: store.RoleAdmin, password: true, totp: true})
	attacker := h.browserFrom("127.0.0.2")
	for i := range MaxFreeFailures + 3 {
		m := newMachine()
		u := h.begin(m)
		h.openForm(attacker, u)
		if status, _ := h.post(attacker, u, "root@example.com", "not the password", "000000"); status != http.StatusUnauthorized && status != http.StatusTooManyRequests {
			t.Fatalf("attacker attempt %d: %d", i, status)
		}
	}
	m := newMachine()
	u := h.begin(m)
	owner := h.browser()
	h.openForm(owner, u)
	if status, body := h.post(owner, u, "root@example.com", testPassword, h.code(root)); status != http.StatusOK {
		t.Fatalf("the admin from their own address: %d\n%s", status, body)
	}
	if got, err := h.wait(m, u, time.Second); err != nil || got.ID != root.ID {
		t.Fatalf("Wait: %+v, %v", got, err)
	}
}

// A TOTP code is accepted once, also across a coordinator restart (issue
// 11, defect 8): the step is stored with the sign-in.
func TestTOTPReplayAcrossRestart(t *testing.T) {
	h := newHarness(t, nil)
	ann := h.addUser(userSpec{name: "ann", password: true, totp: true})
	code := h.code(ann)
	signIn := func() (int, string) {
		m := newMachine()
		u := h.begin(m)
		b := h.browser()
		h.openForm(b, u)
		return h.post(b, u, "ann", testPassword, code)
	}
	if status, body := signIn(); status != 200 {
		t.Fatalf("first use: %d\n%s", status, body)
	}
	h.restart()
	if status, body := signIn(); status != http.StatusUnauthorized || !strings.Contains(body, "already used") {
		t.Fatalf("the same code after a restart: %d\n%s", status, body)
	}
}

func TestTOTPReplay(t *testing.T) {
	h := newHarness(t, nil)
	ann := h.addUser(userSpec{name: "ann", password: true, totp: true})
	signIn := func(code string) (int, string) {
		m := newMachine()
		u := h.begin(m)
		b := h.browser()
		h.openForm(b, u)
		return h.post(b, u, "ann", testPassword, code)
	}
	code := h.code(ann)
	if status, body := signIn(code); status != 200 {
		t.Fatalf("first use: %d\n%s", status, body)
	}
	if status, body := signIn(code); status != http.StatusUnauthorized || !strings.Contains(body, "already used") {
		t.Fatalf("replay: %d\n%s", status, body)
	}
	// The previous step's code is older than the used one: refused too.
	if status, _ := signIn(codeAt(t, ann.TOTPSecret, h.clock.Now().Add(-30*time.Second))); status != http.StatusUnauthorized {
		t.Fatalf("older code after a newer one: %d", status)
	}
	h.clock.Advance(30 * time.Second)
	if status, body := signIn(h.code(ann)); status != 200 {
		t.Fatalf("next step's code: %d\n%s", status, body)
	}
}

func TestUnknownLoginID(t *testing.T) {
	h := newHarness(t, nil)
	h.begin(newMachine())
	b := h.browser()
	for _, path := range []string{LoginPath + "nope", LoginPath + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", LoginPath, LoginPath + "x/y"} {
		if status, _ := h.get(b, h.srv.URL+path); status != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, status)
		}
	}
	if status, body := h.post(b, h.srv.URL+LoginPath+"nope", "ann", testPassword, ""); status != http.StatusNotFound ||
		!strings.Contains(body, "warren up") {
		t.Errorf("POST unknown = %d\n%s", status, body)
	}
}

func TestWaitRejectsForeignURL(t *testing.T) {
	h := newHarness(t, nil)
	m := newMachine()
	u := h.begin(m)
	id := strings.TrimPrefix(u, h.srv.URL+LoginPath)
	tests := []struct {
		name string
		url  string
		same bool // Wait as the machine that began
	}{
		{"other machine", u, false},
		{"other coordinator", "https://evil.example.com" + LoginPath + id, true},
		{"id not issued", h.srv.URL + LoginPath + "AAAA" + id[4:], true},
		{"no id", h.srv.URL + LoginPath, true},
		{"empty", "", true},
		{"id with suffix", u + "x", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mm := m
			if !tt.same {
				mm = newMachine()
			}
			if _, err := h.wait(mm, tt.url, 5*time.Second); !errors.Is(err, ErrUnknownLogin) {
				t.Fatalf("Wait = %v, want ErrUnknownLogin", err)
			}
		})
	}
	if !h.isLive(m, u) {
		t.Fatal("foreign Waits ended the real login")
	}
}

func TestWaitContextAndExpiry(t *testing.T) {
	t.Run("context ends, login stays", func(t *testing.T) {
		h := newHarness(t, nil)
		h.addUser(userSpec{name: "bob", password: true})
		m := newMachine()
		u := h.begin(m)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := h.login.Wait(ctx, m, u); !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait = %v, want context.Canceled", err)
		}
		b := h.browser()
		h.openForm(b, u)
		if status, _ := h.post(b, u, "bob", testPassword, ""); status != 200 {
			t.Fatalf("POST after a cancelled Wait: %d", status)
		}
		if got, err := h.wait(m, u, time.Second); err != nil || got.Name != "bob" {
			t.Fatalf("Wait = %v, %v", got.Name, err)
		}
	})
	t.Run("timer", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.Now = nil; c.LoginTimeout = 30 * time.Millisecond })
		m := newMachine()
		u := h.begin(m)
		if _, err := h.wait(m, u, 10*time.Second); !errors.Is(err, ErrLoginExpired) {
			t.Fatalf("Wait = %v, want ErrLoginExpired", err)
		}
		if status, _ := h.get(h.browser(), u); status != http.StatusNotFound {
			t.Fatalf("GET expired = %d, want 404", status)
		}
	})
	t.Run("clock", func(t *testing.T) {
		h := newHarness(t, nil)
		h.addUser(userSpec{name: "bob", password: true})
		m := newMachine()
		u := h.begin(m)
		b := h.browser()
		h.openForm(b, u)
		h.clock.Advance(login.DefaultTimeout)
		if status, _ := h.post(b, u, "bob", testPassword, ""); status != http.StatusNotFound {
			t.Fatalf("POST to an expired login = %d, want 404", status)
		}
		if _, err := h.wait(m, u, time.Second); !errors.Is(err, ErrUnknownLogin) {
			t.Fatalf("Wait = %v, want ErrUnknownLogin", err)
		}
	})
}

func TestPendingBounded(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxPending = 3 })
	for range 3 {
		h.begin(newMachine())
	}
	if _, err := h.login.Begin(context.Background(), newMachine(), "192.0.2.1:40000"); !errors.Is(err, ErrTooManyLogins) {
		t.Fatalf("Begin beyond MaxPending = %v, want ErrTooManyLogins", err)
	}
	h.clock.Advance(login.DefaultTimeout)
	h.begin(newMachine()) // expired logins were swept
	if n := h.login.table.Len(); n != 1 {
		t.Fatalf("%d pending after the sweep, want 1", n)
	}
}

func TestBeginSupersedes(t *testing.T) {
	h := newHarness(t, nil)
	m := newMachine()
	first := h.begin(m)
	second := h.begin(m)
	if first == second {
		t.Fatal("Begin returned the same URL twice")
	}
	if _, err := h.wait(m, first, time.Second); !errors.Is(err, ErrUnknownLogin) && !errors.Is(err, ErrSuperseded) {
		t.Fatalf("Wait(first) = %v", err)
	}
	if !h.isLive(m, second) {
		t.Fatal("newest login is not live")
	}
}

func TestClose(t *testing.T) {
	h := newHarness(t, nil)
	m := newMachine()
	u := h.begin(m)
	errc := make(chan error, 1)
	go func() {
		_, err := h.wait(m, u, 10*time.Second)
		errc <- err
	}()
	h.login.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) && !errors.Is(err, ErrUnknownLogin) {
		t.Fatalf("Wait after Close = %v", err)
	}
	if _, err := h.login.Begin(context.Background(), newMachine(), "192.0.2.1:40000"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Begin after Close = %v", err)
	}
}

func TestCookieRequired(t *testing.T) {
	h := newHarness(t, nil)
	h.addUser(userSpec{name: "bob", password: true})
	m := newMachine()
	u := h.begin(m)
	noJar := h.srv.Client()
	for range MaxAttemptsPerLogin + 1 {
		status, body := h.post(noJar, u, "bob", testPassword, "")
		if status != http.StatusForbidden || !strings.Contains(body, "cookie") {
			t.Fatalf("POST without cookie = %d\n%s", status, body)
		}
	}
	// Those did not count as failed attempts.
	b := h.browser()
	h.openForm(b, u)
	if status, _ := h.post(b, u, "bob", testPassword, ""); status != 200 {
		t.Fatalf("POST with cookie = %d", status)
	}
}

func TestPageSafety(t *testing.T) {
	h := newHarness(t, nil)
	m := newMachine()
	u := h.begin(m)
	b := h.browser()
	resp, err := b.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	_, body := readBody(t, resp)
	for hdr, want := range map[string]string{
		"Cache-Control":   "no-store",
		"Referrer-Policy": "no-referrer",
		"X-Frame-Options": "DENY",
		"Content-Type":    "text/html; charset=utf-8",
	} {
		if got := resp.Header.Get(hdr); got != want {
			t.Errorf("%s = %q, want %q", hdr, got, want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == cookieName {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != strings.TrimPrefix(u, h.srv.URL) {
		t.Fatalf("cookie %+v", cookie)
	}
	for _, bad := range []string{"<script", "src=", "http://", "https://"} {
		if strings.Contains(body, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	if !strings.Contains(body, m.ShortString()) {
		t.Error("page does not show the machine key")
	}
	// A typed name is shown again, escaped.
	status, body := h.post(b, u, `<script>alert(1)</script>`, "wrong password!", "")
	if status != http.StatusUnauthorized || strings.Contains(body, "<script>") || !strings.Contains(body, "&lt;script&gt;") {
		t.Fatalf("name not escaped: %d\n%s", status, body)
	}
	if resp, err := b.Head(u); err != nil || resp.StatusCode != 200 {
		t.Fatalf("HEAD = %v, %v", resp, err)
	}
	req, _ := http.NewRequest(http.MethodPut, u, nil)
	if resp, err := b.Do(req); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("PUT = %v, %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// TestConcurrentAttempts hammers one user from many logins at once: the
// reservations keep the number of checked wrong passwords within the
// limits, and every goroutine ends.
func TestConcurrentAttempts(t *testing.T) {
	h := newHarness(t, nil)
	h.addUser(userSpec{name: "bob", password: true})
	const logins, perLogin = 8, 3
	var wg sync.WaitGroup
	for range logins {
		m := newMachine()
		u := h.begin(m)
		b := h.browser()
		h.openForm(b, u)
		for range perLogin {
			wg.Go(func() {
				resp, err := b.PostForm(u, map[string][]string{"user": {"bob"}, "password": {"wrong password!"}})
				if err != nil {
					t.Error(err)
					return
				}
				status, _ := readBody(t, resp)
				switch status {
				case http.StatusUnauthorized, http.StatusTooManyRequests, http.StatusGone:
				default:
					t.Errorf("status %d", status)
				}
			})
		}
	}
	wg.Wait()
	checked := 0
	for _, e := range h.audits() {
		if strings.Contains(e.Detail, reasonBadPassword) {
			checked++
		}
	}
	if checked > MaxFreeFailures {
		t.Fatalf("%d wrong passwords were checked for one user, limit %d", checked, MaxFreeFailures)
	}
}

func TestNewConfig(t *testing.T) {
	h := newHarness(t, nil)
	users := h.cfg.Users
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"minimal", Config{Store: h.st, Users: users, BaseURL: "https://warren.example.com"}, true},
		{"with path", Config{Store: h.st, Users: users, BaseURL: "https://example.com/warren/"}, true},
		{"no store", Config{Users: users, BaseURL: "https://warren.example.com"}, false},
		{"no users", Config{Store: h.st, BaseURL: "https://warren.example.com"}, false},
		{"no base URL", Config{Store: h.st, Users: users}, false},
		{"relative", Config{Store: h.st, Users: users, BaseURL: "warren.example.com"}, false},
		{"other scheme", Config{Store: h.st, Users: users, BaseURL: "ftp://warren.example.com"}, false},
		{"query", Config{Store: h.st, Users: users, BaseURL: "https://warren.example.com/?a=b"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := New(tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("New = %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				return
			}
			u, err := l.Begin(context.Background(), newMachine(), "192.0.2.1:40000")
			if err != nil {
				t.Fatal(err)
			}
			want := strings.TrimRight(tt.cfg.BaseURL, "/") + LoginPath
			if !strings.HasPrefix(u, want) || len(u)-len(want) < 22 {
				t.Fatalf("URL %q, want %q + a 128-bit id or longer", u, want)
			}
		})
	}
}
