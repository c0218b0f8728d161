package local

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/login"
	"github.com/warrenmesh/warren/coordinator/login/credential"
	"github.com/warrenmesh/warren/coordinator/netmap"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/tstest/testclock"
	"github.com/warrenmesh/warren/internal/tstest/testlog"
)

// harness is a Login over a real SQLite store, served by an httptest
// server with Handler mounted at LoginPath.
type harness struct {
	t       *testing.T
	st      store.Store
	login   *Login // guarded by mu once serving
	cfg     Config
	srv     *httptest.Server
	clock   *testclock.Clock
	failLog *testlog.Buffer // every unauthenticated failure's log line

	mu      sync.Mutex
	changed []store.UserID // users whose sign-in changed them (MFA)
}

// recorder is the registry (the real login.Users) noting the users whose
// sign-in changed their MFA time.
type recorder struct {
	reg *registry.Registry
	h   *harness
}

func (r recorder) SignIn(ctx context.Context, id login.Identity) (store.User, error) {
	u, err := r.reg.SignIn(ctx, id)
	if err == nil && id.MFA {
		r.h.mu.Lock()
		r.h.changed = append(r.h.changed, u.ID)
		r.h.mu.Unlock()
	}
	return u, err
}

func (r recorder) ApplyRecheck(ctx context.Context, u store.User, rc login.Recheck) (bool, error) {
	return r.reg.ApplyRecheck(ctx, u, rc)
}

// cheap are the argon2id parameters of the tests' password hashes.
var cheap = credential.Params{MemoryKiB: 256, Passes: 1, Lanes: 1}

// testPassword is every test user's password.
const testPassword = "correct horse battery"

func newHarness(t *testing.T, tweak func(*Config)) *harness {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "warren.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, st: st, clock: testclock.New(time.Unix(1_780_000_005, 0).UTC()), failLog: &testlog.Buffer{}}
	mux := http.NewServeMux()
	h.srv = httptest.NewServer(mux)
	al := audit.New(st, nil)
	reg, err := registry.New(context.Background(), registry.Config{Store: st, Engine: netmap.New(netmap.Config{}), Audit: al, Now: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	cfg := Config{
		Store:          st,
		Users:          recorder{reg: reg, h: h},
		Audit:          al,
		Failures:       audit.NewFailures(slog.New(slog.NewJSONHandler(h.failLog, nil)), time.Nanosecond),
		Now:            h.clock.Now,
		BaseURL:        h.srv.URL + "/",
		PasswordParams: cheap,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	h.cfg = cfg
	h.login, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle(LoginPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		l := h.login
		h.mu.Unlock()
		l.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		h.mu.Lock()
		l := h.login
		h.mu.Unlock()
		l.Close()
		h.srv.Close()
		st.Close()
	})
	return h
}

// restart replaces the Login and the registry behind it with new ones on
// the same store, as a coordinator restart does: nothing in memory stays.
func (h *harness) restart() {
	h.t.Helper()
	reg, err := registry.New(context.Background(), registry.Config{Store: h.st, Engine: netmap.New(netmap.Config{}),
		Audit: h.cfg.Audit, Now: h.clock.Now})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(reg.Close)
	cfg := h.cfg
	cfg.Users = recorder{reg: reg, h: h}
	l, err := New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.mu.Lock()
	old := h.login
	h.login = l
	h.mu.Unlock()
	old.Close()
}

// browserFrom returns a browser whose connections come from the loopback
// address src (e.g. 127.0.0.2), another source than browser's.
func (h *harness) browserFrom(src string) *http.Client {
	h.t.Helper()
	c := h.browser()
	tr := h.srv.Client().Transport.(*http.Transport).Clone()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	tr.DialContext = d.DialContext
	h.t.Cleanup(tr.CloseIdleConnections)
	c.Transport = tr
	return c
}

// userSpec describes a test user.
type userSpec struct {
	name     string
	role     store.Role
	password bool // set testPassword
	totp     bool
	disabled bool
	mfaAt    time.Time
}

// addUser creates a user and returns it with its TOTP secret (if any).
func (h *harness) addUser(s userSpec) store.User {
	h.t.Helper()
	u := store.User{Name: s.name, Role: s.role, Disabled: s.disabled, MFAAt: s.mfaAt, Created: h.clock.Now()}
	if u.Role == "" {
		u.Role = store.RoleMember
	}
	if s.password {
		phc, err := cheap.Hash(testPassword)
		if err != nil {
			h.t.Fatal(err)
		}
		u.PasswordHash = phc
	}
	if s.totp {
		secret, _, err := credential.NewTOTP("Warren", s.name)
		if err != nil {
			h.t.Fatal(err)
		}
		u.TOTPSecret = secret
	}
	u, err := h.st.CreateUser(context.Background(), u)
	if err != nil {
		h.t.Fatal(err)
	}
	return u
}

// code returns the user's current TOTP code.
func (h *harness) code(u store.User) string {
	h.t.Helper()
	return codeAt(h.t, u.TOTPSecret, h.clock.Now())
}

func (h *harness) begin(m key.MachinePublic) string {
	h.t.Helper()
	u, err := h.login.Begin(context.Background(), m, "192.0.2.1:40000")
	if err != nil {
		h.t.Fatalf("Begin: %v", err)
	}
	if !strings.HasPrefix(u, h.srv.URL+LoginPath) {
		h.t.Fatalf("Begin returned %q, want it under %s", u, h.srv.URL+LoginPath)
	}
	return u
}

// browser returns a client with its own cookie jar.
func (h *harness) browser() *http.Client {
	h.t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		h.t.Fatal(err)
	}
	c := *h.srv.Client()
	c.Jar = jar
	return &c
}

func (h *harness) get(c *http.Client, u string) (int, string) {
	h.t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		h.t.Fatal(err)
	}
	return readBody(h.t, resp)
}

func (h *harness) post(c *http.Client, u, name, password, code string) (int, string) {
	h.t.Helper()
	resp, err := c.PostForm(u, url.Values{"user": {name}, "password": {password}, "code": {code}})
	if err != nil {
		h.t.Fatal(err)
	}
	return readBody(h.t, resp)
}

// openForm GETs the form (setting the cookie) and checks it is a form.
func (h *harness) openForm(c *http.Client, u string) {
	h.t.Helper()
	status, body := h.get(c, u)
	if status != http.StatusOK || !strings.Contains(body, `<form method="post"`) {
		h.t.Fatalf("GET form: %d\n%s", status, body)
	}
}

func readBody(t *testing.T, resp *http.Response) (int, string) {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// wait calls Wait with a deadline.
func (h *harness) wait(m key.MachinePublic, u string, d time.Duration) (store.User, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return h.login.Wait(ctx, m, u)
}

// audits returns the login.local audit events, oldest first.
func (h *harness) audits() []store.AuditEvent {
	h.t.Helper()
	evs, err := h.st.ListAudit(context.Background(), store.AuditFilter{Action: AuditAction})
	if err != nil {
		h.t.Fatal(err)
	}
	return evs
}

// lastAudit returns the newest login.local event for machine.
func (h *harness) lastAudit(m key.MachinePublic) (store.AuditEvent, map[string]any) {
	h.t.Helper()
	var last *store.AuditEvent
	for _, e := range h.audits() {
		if e.Target == "node:"+m.String() && (last == nil || e.ID > last.ID) {
			last = &e
		}
	}
	if last == nil {
		h.t.Fatalf("no audit event for %s", m)
	}
	var detail map[string]any
	if err := json.Unmarshal([]byte(last.Detail), &detail); err != nil {
		h.t.Fatal(err)
	}
	return *last, detail
}

func (h *harness) changedUsers() []store.UserID {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]store.UserID(nil), h.changed...)
}

func newMachine() key.MachinePublic { return key.NewMachine().Public() }

// isLive reports whether the login at u is still open: Wait does not
// return before a short deadline.
func (h *harness) isLive(m key.MachinePublic, u string) bool {
	h.t.Helper()
	_, err := h.wait(m, u, 20*time.Millisecond)
	return errors.Is(err, context.DeadlineExceeded)
}

// codeAt returns the 6-digit code of secret at t.
func codeAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
