package lb

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/poll"
)

// replica serves /key (the health check) and / (its name) on loopback.
func replica(t *testing.T, name string) (Backend, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	stop := func() { srv.Close(); <-done }
	t.Cleanup(stop)
	return Backend{Name: name, Addr: ln.Addr().String()}, stop
}

// who asks the balancer, on a fresh connection, which replica answers.
func who(lb *LB) (string, error) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := c.Get(lb.URL + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestBalancer: connections alternate between healthy replicas; a
// disabled one takes none; one that dies is marked down by the health
// check and every connection then goes to the other.
func TestBalancer(t *testing.T) {
	a, stopA := replica(t, "a")
	b, _ := replica(t, "b")
	lb := Start(t, a, b)
	for _, name := range []string{"a", "b"} {
		poll.UntilTrue(t, 20*time.Second, name+" up", func() bool { up, _ := lb.Up(name); return up })
	}
	seen := map[string]int{}
	for range 6 {
		w, err := who(lb)
		if err != nil {
			t.Fatal(err)
		}
		seen[w]++
	}
	if seen["a"] != 3 || seen["b"] != 3 {
		t.Fatalf("round robin over 6 connections: %v, want 3 each", seen)
	}
	check := func(what, want string) {
		t.Helper()
		for range 4 {
			if w, err := who(lb); err != nil || w != want {
				t.Fatalf("%s: answered by %q (%v), want %s", what, w, err, want)
			}
		}
	}
	// A connection held across a drain stays up.
	held, err := net.Dial("tcp", strings.TrimPrefix(lb.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	lb.Disable(t, "a")
	lb.Disable(t, "b")
	lb.Enable(t, "a")
	check("b drained", "a")
	lb.Enable(t, "b")
	if _, err := fmt.Fprintf(held, "GET / HTTP/1.0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(held); err != nil || !strings.HasSuffix(string(b), "a") && !strings.HasSuffix(string(b), "b") {
		t.Fatalf("a connection held across a drain: %q, %v", b, err)
	}
	stopA()
	// Before the check marks a down, redispatch sends a refused
	// connection on to b; after, a gets none.
	check("a dead", "b")
	poll.UntilTrue(t, 20*time.Second, "a marked down", func() bool { up, _ := lb.Up("a"); return !up })
	check("a down", "b")
}

func TestConfig(t *testing.T) {
	got := config("127.0.0.1:1", "/tmp/s", []Backend{{"a", "127.0.0.1:2"}, {"b", "127.0.0.1:3"}})
	for _, want := range []string{"bind 127.0.0.1:1", "server a 127.0.0.1:2 check", "server b 127.0.0.1:3 check", "stats socket /tmp/s", "mode tcp"} {
		if !contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
