//go:build !windows

package localapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/peercred"
)

func TestBadBodies(t *testing.T) {
	big := `{"peer":"` + strings.Repeat("a", 1<<20) + `"}`
	tests := []struct {
		name   string
		target string
		body   string
		code   int
		want   string // in the error message
	}{
		{"truncated", "/v0/ping", `{"peer":`, http.StatusBadRequest, "bad request body"},
		{"not json", "/v0/ping", `peer=web`, http.StatusBadRequest, "bad request body"},
		{"wrong type", "/v0/ping", `{"peer":5}`, http.StatusBadRequest, "bad request body"},
		{"negative port", "/v0/ping", `{"peer":"web","tcpPort":-1}`, http.StatusBadRequest, "bad request body"},
		{"unknown field", "/v0/ping", `{"peer":"web","bogus":1}`, http.StatusBadRequest, "unknown field"},
		{"unknown field up", "/v0/up", `{"authToken":"k"}`, http.StatusBadRequest, "unknown field"},
		{"array", "/v0/up", `[]`, http.StatusBadRequest, "bad request body"},
		{"two values", "/v0/ping", `{"peer":"a"}{"peer":"b"}`, http.StatusBadRequest, "after the JSON value"},
		{"trailing junk", "/v0/ping", `{"peer":"a"} x`, http.StatusBadRequest, "after the JSON value"},
		{"trailing brace", "/v0/up", `{}}`, http.StatusBadRequest, "after the JSON value"},
		{"oversized", "/v0/ping", big, http.StatusRequestEntityTooLarge, "over 65536 bytes"},
		{"oversized up", "/v0/up", big, http.StatusRequestEntityTooLarge, "over 65536 bytes"},
		{"oversized padding", "/v0/ping", `{"peer":"a"}` + strings.Repeat(" ", maxBody), http.StatusRequestEntityTooLarge, "over"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newFakeBackend()
			ts := startServer(t, b, Config{})
			resp, body := rawDo(t, ts.path, http.MethodPost, tt.target, strings.NewReader(tt.body), nil)
			if resp.StatusCode != tt.code {
				t.Errorf("status %d, want %d (%s)", resp.StatusCode, tt.code, body)
			}
			if msg := apiErrorOf(t, body); !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not mention %q", msg, tt.want)
			}
			if calls := b.Calls(); len(calls) != 0 {
				t.Errorf("bad body reached the backend: %q", calls)
			}
		})
	}
}

func TestAcceptableBodies(t *testing.T) {
	b := newFakeBackend()
	ts := startServer(t, b, Config{})
	for _, body := range []string{"", "  \n", `{"peer":"web"}` + "\n", " {\"peer\":\"web\"} \r\n\t", `{"Peer":"web"}`} {
		resp, got := rawDo(t, ts.path, http.MethodPost, "/v0/ping", strings.NewReader(body), nil)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("body %q: status %d: %s", body, resp.StatusCode, got)
		}
	}
	_, pings, _ := b.requests()
	want := []PingRequest{{}, {}, {Peer: "web"}, {Peer: "web"}, {Peer: "web"}}
	if !slices.Equal(pings, want) {
		t.Errorf("backend got %+v, want %+v", pings, want)
	}
}

// TestMalformedHTTP sends what no HTTP client would and checks the server
// answers with a 4xx and keeps serving.
func TestMalformedHTTP(t *testing.T) {
	b := newFakeBackend()
	ts := startServer(t, b, Config{})
	tests := []struct {
		name string
		req  string
		code int
	}{
		{"huge header", "GET /v0/status HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 2<<20) + "\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
		{"garbage", "\x00\x01\x02 nonsense\r\n\r\n", http.StatusBadRequest},
		{"bad version", "GET /v0/status HTTP/9.9\r\nHost: x\r\n\r\n", http.StatusHTTPVersionNotSupported},
		{"no host", "GET /v0/status HTTP/1.1\r\n\r\n", http.StatusBadRequest},
		{"bad content length", "POST /v0/ping HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", http.StatusBadRequest},
		{"short body", "POST /v0/ping HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{\"peer\":", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("unix", ts.path)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			wrote := make(chan struct{})
			go func() { // ends when the write is done or fails
				defer close(wrote)
				_, _ = io.WriteString(c, tt.req)
				if strings.HasPrefix(tt.name, "short") {
					c.(*net.UnixConn).CloseWrite()
				}
			}()
			defer func() { c.Close(); <-wrote }()
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no response: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.code {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.code)
			}
		})
	}
	if _, err := ts.client.Status(testCtx(t)); err != nil {
		t.Fatalf("server broken after malformed requests: %v", err)
	}
	if calls := b.Calls(); !slices.Equal(calls, []string{"Status"}) {
		t.Errorf("malformed requests reached the backend: %q", calls)
	}
}

// fuzzCredContext returns a context carrying this process's credentials
// as the server records them for a real unix-socket connection.
func fuzzCredContext(tb testing.TB) context.Context {
	tb.Helper()
	a, b, err := socketPair()
	if err != nil {
		tb.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	ctx := peercred.ConnContext(context.Background(), a)
	if _, ok := peercred.FromContext(ctx); !ok {
		tb.Fatal("no peer credentials for a socket pair")
	}
	return ctx
}

// FuzzRequest feeds arbitrary requests to the server's handler, as an
// allowed caller, and checks it answers each with a status and no panic.
func FuzzRequest(f *testing.F) {
	seeds := []struct {
		method, target, body string
		upgrade              bool
	}{
		{"GET", "/v0/status", "", false},
		{"POST", "/v0/up", `{"coordinator":"https://c","authKey":"k","tags":["tag:a"]}`, false},
		{"POST", "/v0/up", `{"bogus":1}`, false},
		{"POST", "/v0/down", "", false},
		{"POST", "/v0/logout", "{}", false},
		{"POST", "/v0/ping", `{"peer":"web","count":3,"tcpPort":22}`, false},
		{"POST", "/v0/ping", `{"peer":`, false},
		{"GET", "/v0/netcheck", "", false},
		{"GET", "/v0/resolve?name=web", "", false},
		{"GET", "/v0/resolve?name=%zz", "", false},
		{"POST", "/v0/dial?network=tcp&addr=web:80", "", true},
		{"POST", "/v0/dial?network=udp&addr=web:80", "", true},
		{"POST", "/v0/dial?addr=web:80", "", false},
		{"POST", "/v0/access", `{"op":"request","dst":"tag:db:5432","forNs":7200000000000,"reason":"INC-4211"}`, false},
		{"POST", "/v0/access", `{"op":"list","pending":true}`, false},
		{"POST", "/v0/access", `{"op":""}`, false},
		{"DELETE", "/v0/status", "", false},
		{"GET", "/../v0/status", "", false},
		{"CONNECT", "web:80", "", false},
	}
	for _, s := range seeds {
		f.Add(s.method, s.target, []byte(s.body), s.upgrade)
	}
	ctx := fuzzCredContext(f)
	b := newFakeBackend()
	b.quiet = true
	s, err := NewServer(Config{Backend: dialCloser{b}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, target string, body []byte, upgrade bool) {
		req, err := http.NewRequestWithContext(ctx, method, "http://warrend"+target, bytes.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		req.RequestURI = req.URL.RequestURI()
		if upgrade {
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", dialUpgrade)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code < 200 || w.Code > 599 {
			t.Fatalf("%s %q: status %d", method, target, w.Code)
		}
		// The mux answers 404 and 405 in plain text; every other failure
		// is a JSON error saying what went wrong.
		if w.Code >= 400 && w.Code != http.StatusNotFound && w.Code != http.StatusMethodNotAllowed {
			var e apiError
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("%s %q: status %d with body %q", method, target, w.Code, w.Body.Bytes())
			}
		}
	})
}

// dialCloser is a Backend whose Dial returns a pipe, closing the far end
// when the server closes the near one.
type dialCloser struct{ *fakeBackend }

func (d dialCloser) Dial(_ context.Context, network, hostport string) (net.Conn, error) {
	d.record("Dial")
	near, far := net.Pipe()
	go func() { // ends when the server closes near
		_, _ = io.Copy(io.Discard, far)
		far.Close()
	}()
	return near, nil
}
