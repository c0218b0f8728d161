package oidc

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/login"
	"github.com/warrenmesh/warren/coordinator/netmap"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/tstest/oidctest"
	"github.com/warrenmesh/warren/internal/tstest/testclock"
	"github.com/warrenmesh/warren/internal/tstest/testlog"
)

// TestMain checks that no test leaves a goroutine behind.
func TestMain(m *testing.M) {
	// The provider's example login UI logs every request through the
	// default logger; keep the test output readable.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	goleak.VerifyTestMain(m)
}

// harness is a coordinator login (Login + its handler on a test server)
// against a real test provider, with a SQLite store.
type harness struct {
	t     testing.TB
	op    *oidctest.Provider
	st    store.Store
	login *Login
	url   string           // the coordinator's base URL
	clock *testclock.Clock // starts at the real time, so provider-issued tokens verify

	failLog *testlog.Buffer // every unauthenticated failure's log line

	mu      sync.Mutex
	changed []store.UserID // users a sign-in or recheck changed
	revoked []store.UserID // users a recheck revoked
	reason  string         // the last revocation's reason
}

// recorder is the registry (the real login.Users) noting what changed.
type recorder struct {
	reg *registry.Registry
	h   *harness
}

func (r recorder) SignIn(ctx context.Context, id login.Identity) (store.User, error) {
	before, _ := r.h.st.GetUserByIdentity(ctx, id.Issuer, id.Subject)
	u, err := r.reg.SignIn(ctx, id)
	if err == nil && before.ID != 0 && (!slices.Equal(before.Groups, u.Groups) || !before.MFAAt.Equal(u.MFAAt)) {
		r.h.mu.Lock()
		r.h.changed = append(r.h.changed, u.ID)
		r.h.mu.Unlock()
	}
	return u, err
}

func (r recorder) ApplyRecheck(ctx context.Context, u store.User, rc login.Recheck) (bool, error) {
	changed, err := r.reg.ApplyRecheck(ctx, u, rc)
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	switch {
	case err == nil && rc.Revoked:
		r.h.revoked, r.h.reason = append(r.h.revoked, u.ID), rc.Reason
	case err == nil && changed:
		r.h.changed = append(r.h.changed, u.ID)
	}
	return changed, err
}

// revokedUsers returns the users rechecks revoked so far, and the last
// reason.
func (h *harness) revokedUsers() ([]store.UserID, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]store.UserID(nil), h.revoked...), h.reason
}

// newHarness starts a provider and a coordinator login configured for the
// provider's confidential client; opts adjust the Config before New.
func newHarness(t testing.TB, opts ...func(*Config)) *harness {
	t.Helper()
	ctx := context.Background()
	srv := httptest.NewUnstartedServer(nil)
	h := &harness{t: t, url: "http://" + srv.Listener.Addr().String(), clock: testclock.New(time.Now().Truncate(time.Second)),
		failLog: &testlog.Buffer{}}
	h.op = newTestOP(t, h.url+CallbackPath)

	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "warren.db"), nil)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	h.st = st
	al := audit.New(st, nil)
	reg, err := registry.New(ctx, registry.Config{Store: st, Engine: netmap.New(netmap.Config{}), Audit: al, Now: h.clock.Now})
	if err != nil {
		t.Fatalf("registry: %v", err)
	}
	t.Cleanup(reg.Close)

	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	cfg := Config{
		Issuer:       h.op.Issuer(),
		ClientID:     clientWeb,
		ClientSecret: clientSecret,
		RedirectURL:  h.url + CallbackPath,
		Store:        st,
		Users:        recorder{reg: reg, h: h},
		Audit:        al,
		Failures:     audit.NewFailures(slog.New(slog.NewJSONHandler(h.failLog, nil)), time.Nanosecond),
		HTTPClient:   &http.Client{Transport: tr, Timeout: 10 * time.Second},
		Now:          h.clock.Now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	h.login, err = New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(h.login.Close)
	srv.Config.Handler = h.login.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	return h
}

// changedUsers returns the users sign-ins and rechecks changed so far.
func (h *harness) changedUsers() []store.UserID {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]store.UserID(nil), h.changed...)
}

// begin starts a login for a new machine.
func (h *harness) begin() (key.MachinePublic, string) {
	h.t.Helper()
	m := key.NewMachine().Public()
	u, err := h.login.Begin(context.Background(), m, "192.0.2.1:40000")
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

// newBrowser returns a scripted browser that stops before the redirect to
// the coordinator's callback, so tests can inspect or replay it.
func newBrowser(t testing.TB) *oidctest.Browser {
	t.Helper()
	return oidctest.NewBrowser(t, CallbackPath)
}
