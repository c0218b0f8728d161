package console

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/tstest/testclock"
)

// TestCookieAttributes checks every cookie the console sets, served over
// HTTPS (the default) and in the plain-HTTP test mode.
func TestCookieAttributes(t *testing.T) {
	for _, tc := range []struct {
		insecure             bool
		session, pendingName string
	}{
		{false, "__Host-warren-console", "__Host-warren-console-login"},
		{true, "warren-console", "warren-console-login"},
	} {
		srv := &Server{cfg: Config{InsecureCookies: tc.insecure}}
		rec := httptest.NewRecorder()
		srv.setSessionCookie(rec, &session{id: "id"})
		srv.setPendingCookie(rec, "p", 60)
		srv.clearSessionCookie(rec)
		cs := (&http.Response{Header: rec.Header()}).Cookies()
		if len(cs) != 3 {
			t.Fatalf("cookies %v", cs)
		}
		for i, c := range cs {
			want := []string{tc.session, tc.pendingName, tc.session}[i]
			sameSite := []http.SameSite{http.SameSiteStrictMode, http.SameSiteLaxMode, http.SameSiteStrictMode}[i]
			// __Host-: Secure, Path=/, no Domain.
			if c.Name != want || c.Secure == tc.insecure || !c.HttpOnly || c.SameSite != sameSite || c.Path != "/" || c.Domain != "" {
				t.Errorf("insecure=%v: cookie %d: %+v", tc.insecure, i, c)
			}
		}
		if cs[2].MaxAge >= 0 || cs[2].Value != "" {
			t.Errorf("clearing cookie %+v", cs[2])
		}
	}
}

// TestSafeNext checks where a sign-in may land.
func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"":                           Prefix,
		"/admin/":                    "/admin/",
		"/admin/nodes":               "/admin/nodes",
		"/admin/nodes?x=1":           "/admin/nodes",
		"https://evil.example/":      Prefix,
		"//evil.example/admin/":      Prefix,
		"/admin//evil.example":       Prefix,
		"/\\evil.example":            Prefix,
		"/admin/\\\\evil":            Prefix,
		"/admin/../login/local/x":    Prefix,
		"/admin/..":                  Prefix,
		"/other":                     Prefix,
		"javascript:alert(1)":        Prefix,
		"/admin/\r\nSet-Cookie:x":    Prefix,
		"/admin/%2e%2e/x":            Prefix,
		"/admin/a%2F%2Fevil.example": Prefix,
		"/admin/%5Cevil":             Prefix,
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

// nextIsSafe is what every landing path must be: a path of the console,
// which no browser reads as another origin or outside the console.
func nextIsSafe(p string) bool {
	u, err := url.Parse(p)
	return err == nil && u.Scheme == "" && u.Host == "" && strings.HasPrefix(p, Prefix) &&
		!strings.Contains(p, "//") && !strings.ContainsAny(p, "\\\r\n\t\x00") && !strings.Contains(p, "/../") &&
		!strings.HasSuffix(p, "/..") && len(p) <= 512
}

// FuzzSafeNext checks that no input leads a sign-in anywhere but into
// the console.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"", "/admin/", "/admin/nodes?x=1", "//evil", "/admin/%2F%2Fevil", "/admin/%2e%2e/", "https://x/admin/", "/admin/\\x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if got := safeNext(in); !nextIsSafe(got) {
			t.Fatalf("safeNext(%q) = %q", in, got)
		}
	})
}

// TestSessionsBounded checks the LRU bound and the timeouts of the
// session table.
func TestSessionsBounded(t *testing.T) {
	clock := testclock.New(time.Unix(1e9, 0))
	ss := newSessions(clock.Now, time.Minute, time.Hour, 2)
	a := ss.create(store.UserID(1))
	b := ss.create(store.UserID(2))
	if ss.get(a.id) == nil { // a is now the most recently used
		t.Fatal("a gone")
	}
	c := ss.create(store.UserID(3))
	if ss.get(b.id) != nil || ss.get(a.id) == nil || ss.get(c.id) == nil {
		t.Fatal("the least recently used session was not the one dropped")
	}
	clock.Advance(time.Minute + time.Second)
	if ss.get(a.id) != nil || ss.get(c.id) != nil {
		t.Fatal("idle sessions survived")
	}
	if len(ss.byID) != 0 || ss.lru.Len() != 0 {
		t.Fatalf("%d sessions, %d in the LRU list after expiry", len(ss.byID), ss.lru.Len())
	}
}

// TestPendingBounded checks that pending sign-ins are bounded and expire.
func TestPendingBounded(t *testing.T) {
	clock := testclock.New(time.Unix(1e9, 0))
	pl := newPendingLogins(clock.Now)
	var first string
	for i := range maxPending {
		id, ok := pl.put(pendingLogin{url: "u"})
		if !ok {
			t.Fatalf("full after %d", i)
		}
		if i == 0 {
			first = id
		}
	}
	if _, ok := pl.put(pendingLogin{}); ok {
		t.Fatal("more than maxPending held")
	}
	if _, ok := pl.take(first); !ok {
		t.Fatal("first pending sign-in gone")
	}
	if _, ok := pl.take(first); ok {
		t.Fatal("a pending sign-in taken twice")
	}
	clock.Advance(pendingTimeout)
	if _, ok := pl.put(pendingLogin{}); !ok || len(pl.m) != 1 {
		t.Fatalf("expired sign-ins not swept: %d held", len(pl.m))
	}
}

// FuzzParseRequestForm checks that the access request form's parser
// never panics and accepts only what the access service can take: a
// positive device ID, a bounded positive duration, a destination.
func FuzzParseRequestForm(f *testing.F) {
	f.Add("12", "tag:db:5432", "2h", "deploy")
	f.Add("-1", "", "0s", "")
	f.Add("9223372036854775807", "x", "8784h", "")
	f.Add(" 3 ", " a ", " 1m ", "\x00")
	f.Fuzz(func(t *testing.T, node, dst, duration, reason string) {
		rf, msg := parseRequestForm(node, dst, duration, reason)
		if msg != "" {
			if rf != (requestForm{}) {
				t.Fatalf("refused form with fields %+v", rf)
			}
			return
		}
		if rf.node <= 0 || rf.duration <= 0 || rf.duration > 366*24*time.Hour || strings.TrimSpace(rf.dst) == "" {
			t.Fatalf("accepted %+v from %q %q %q", rf, node, dst, duration)
		}
	})
}
