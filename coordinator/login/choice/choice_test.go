package choice

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/login"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
)

// scripted is an login.Login whose outcomes the test decides: Wait blocks
// until finish is called for the URL (or ctx ends).
type scripted struct {
	name   string
	mu     sync.Mutex
	done   map[string]chan result
	shared map[string]memberOf
	over   map[string]bool
	n      int
	down   bool // Begin fails with login.ErrProviderUnavailable
}

type result struct {
	user store.User
	err  error
}

func newScripted(name string) *scripted {
	return &scripted{name: name, done: map[string]chan result{}, shared: map[string]memberOf{}, over: map[string]bool{}}
}

func (s *scripted) Begin(_ context.Context, _ key.MachinePublic, _ string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return "", login.ErrProviderUnavailable
	}
	s.n++
	u := "http://coord/login/" + s.name + "/" + strings.Repeat("x", s.n)
	s.done[u] = make(chan result, 1)
	return u, nil
}

func (s *scripted) Wait(ctx context.Context, _ key.MachinePublic, u string) (store.User, error) {
	s.mu.Lock()
	ch := s.done[u]
	s.mu.Unlock()
	if ch == nil {
		return store.User{}, errors.New(s.name + ": unknown url")
	}
	select {
	case r := <-ch:
		return r.user, r.err
	case <-ctx.Done():
		return store.User{}, ctx.Err()
	}
}

// BeginShared joins the login's shared outcome: when another method
// settles it, this method's login ends with login.ErrLoginOver.
func (s *scripted) BeginShared(ctx context.Context, m key.MachinePublic, source string, sh *login.Shared) (string, error) {
	u, err := s.Begin(ctx, m, source)
	if err != nil {
		return "", err
	}
	member := sh.Join(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.over[u] = true
		select {
		case s.done[u] <- result{err: login.ErrLoginOver}:
		default:
		}
	})
	s.mu.Lock()
	s.shared[u] = memberOf{sh, member}
	s.mu.Unlock()
	return u, err
}

type memberOf struct {
	shared *login.Shared
	member int
}

// settle claims the login's outcome for this method, as a method does
// before it signs someone in or refuses for good.
func (s *scripted) settle(u string) bool {
	s.mu.Lock()
	m := s.shared[u]
	s.mu.Unlock()
	return m.shared.Settle(m.member)
}

// ended reports whether another method's outcome ended the login at u.
func (s *scripted) ended(u string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.over[u]
}

func (s *scripted) finish(u string, r result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done[u] <- r
}

func (s *scripted) last() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "http://coord/login/" + s.name + "/" + strings.Repeat("x", s.n)
}

func setup(t *testing.T) (*Chooser, *scripted, *scripted, *httptest.Server) {
	t.Helper()
	sso, local := newScripted("sso"), newScripted("local")
	c, err := New(Config{BaseURL: "http://coord/", Methods: []Method{
		{Label: "Sign in with SSO", Login: sso}, {Label: "Local account", Login: local}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(srv.Close)
	return c, sso, local, srv
}

func machine(t *testing.T) key.MachinePublic {
	t.Helper()
	return key.NewMachine().Public()
}

func get(t *testing.T, srv *httptest.Server, loginURL string) (int, string) {
	t.Helper()
	path := strings.TrimPrefix(loginURL, "http://coord")
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestFirstMethodToSucceedWins(t *testing.T) {
	c, sso, local, srv := setup(t)
	m := machine(t)
	u, err := c.Begin(t.Context(), m, "192.0.2.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u, "http://coord"+ChoosePath) {
		t.Fatalf("login URL %q", u)
	}
	status, body := get(t, srv, u)
	if status != http.StatusOK || !strings.Contains(body, sso.last()) || !strings.Contains(body, local.last()) ||
		!strings.Contains(body, "Sign in with SSO") {
		t.Fatalf("page %d:\n%s", status, body)
	}
	done := make(chan result, 1)
	go func() {
		user, err := c.Wait(t.Context(), m, u)
		done <- result{user, err}
	}()
	// The winner settles the shared outcome: the other method's login is
	// ended (its Wait says so), and Wait returns the winner's user.
	if !local.settle(local.last()) {
		t.Fatal("the first method to settle did not get the outcome")
	}
	if sso.settle(sso.last()) {
		t.Fatal("a second method settled the same login")
	}
	local.finish(local.last(), result{user: store.User{ID: 7, Name: "ann"}})
	r := <-done
	if r.err != nil || r.user.ID != 7 {
		t.Fatalf("Wait = %+v", r)
	}
	// The page says the login is over once it succeeded, and links nowhere.
	if status, body := get(t, srv, u); status != http.StatusGone || !strings.Contains(body, "already finished") ||
		strings.Contains(body, sso.last()) {
		t.Fatalf("page after success: %d %s", status, body)
	}
	if _, err := c.Wait(t.Context(), m, u); !errors.Is(err, ErrUnknownLogin) {
		t.Fatalf("second Wait: %v", err)
	}
}

// A refusal by any method ends the login at once (issue 12, defect 4): the
// node is told, instead of waiting until the login times out.
func TestRefusalEndsTheLogin(t *testing.T) {
	for _, tc := range []struct {
		name    string
		refuser int // 0: sso, 1: local
	}{{"sso refuses", 0}, {"local refuses", 1}} {
		t.Run(tc.name, func(t *testing.T) {
			c, sso, local, srv := setup(t)
			methods := []*scripted{sso, local}
			m := machine(t)
			u, err := c.Begin(t.Context(), m, "192.0.2.1:1")
			if err != nil {
				t.Fatal(err)
			}
			refuser, other := methods[tc.refuser], methods[1-tc.refuser]
			refuser.settle(refuser.last())
			refuser.finish(refuser.last(), result{err: errors.New("login refused: wrong domain")})
			if _, err := c.Wait(t.Context(), m, u); err == nil || !strings.Contains(err.Error(), "wrong domain") {
				t.Fatalf("Wait = %v, want the refusal", err)
			}
			if !other.ended(other.last()) {
				t.Fatal("the other method's login was not ended")
			}
			if status, body := get(t, srv, u); status != http.StatusGone || !strings.Contains(body, "already finished") {
				t.Fatalf("page after refusal: %d %s", status, body)
			}
		})
	}
}

func TestWaitChecksMachineAndURL(t *testing.T) {
	c, _, _, srv := setup(t)
	m := machine(t)
	u, err := c.Begin(t.Context(), m, "192.0.2.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Wait(t.Context(), machine(t), u); !errors.Is(err, ErrUnknownLogin) {
		t.Fatalf("other machine: %v", err)
	}
	if _, err := c.Wait(t.Context(), m, u+"x"); !errors.Is(err, ErrUnknownLogin) {
		t.Fatalf("other URL: %v", err)
	}
	for _, p := range []string{ChoosePath, ChoosePath + "nope", ChoosePath + "../x"} {
		if status, body := get(t, srv, "http://coord"+p); status != http.StatusNotFound || strings.Contains(body, "http://coord/login/") {
			t.Fatalf("%s: %d %s", p, status, body)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
	defer cancel()
	if _, err := c.Wait(ctx, m, u); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with ended context: %v", err)
	}
}

func TestBeginSupersedesAndBounds(t *testing.T) {
	sso := newScripted("sso")
	now := time.Unix(1_800_000_000, 0)
	c, err := New(Config{BaseURL: "http://coord", Methods: []Method{{Label: "SSO", Login: sso}},
		MaxPending: 2, Timeout: time.Minute, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	m := machine(t)
	first, _ := c.Begin(t.Context(), m, "192.0.2.1:1")
	second, _ := c.Begin(t.Context(), m, "192.0.2.1:1")
	if _, err := c.Wait(t.Context(), m, first); !errors.Is(err, ErrUnknownLogin) {
		t.Fatalf("superseded login: %v", err)
	}
	if _, err := c.Begin(t.Context(), machine(t), "192.0.2.1:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Begin(t.Context(), machine(t), "192.0.2.1:1"); !errors.Is(err, ErrTooManyLogins) {
		t.Fatalf("third machine: %v", err)
	}
	now = now.Add(2 * time.Minute)
	if _, err := c.Wait(t.Context(), m, second); !errors.Is(err, ErrUnknownLogin) {
		t.Fatalf("expired login: %v", err)
	}
	if _, err := c.Begin(t.Context(), machine(t), "192.0.2.1:1"); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Methods: []Method{{Label: "x", Login: newScripted("x")}}},
		{BaseURL: "http://c"},
		{BaseURL: "http://c", Methods: []Method{{Label: "x"}}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) = nil error", cfg)
		}
	}
}

// TestProviderDownOffersTheRest: while the identity provider cannot be
// reached the page offers the other methods (a break-glass account) and
// says why SSO is missing; with no method left, Begin fails with the
// provider's error (issue 12, defect 6).
func TestProviderDownOffersTheRest(t *testing.T) {
	c, sso, local, srv := setup(t)
	sso.down = true
	m := machine(t)
	u, err := c.Begin(t.Context(), m, "192.0.2.1:1")
	if err != nil {
		t.Fatal(err)
	}
	status, body := get(t, srv, u)
	if status != http.StatusOK || !strings.Contains(body, local.last()) || !strings.Contains(body, "cannot be reached") ||
		strings.Contains(body, "http://coord/login/sso/") {
		t.Fatalf("page %d:\n%s", status, body)
	}
	local.finish(local.last(), result{user: store.User{ID: 7}})
	if r, err := c.Wait(t.Context(), m, u); err != nil || r.ID != 7 {
		t.Fatalf("Wait = %+v, %v", r, err)
	}

	local.down = true
	if _, err := c.Begin(t.Context(), machine(t), "192.0.2.1:1"); !errors.Is(err, login.ErrProviderUnavailable) {
		t.Fatalf("Begin with every method down: %v", err)
	}
}
