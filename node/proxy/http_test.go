package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestHTTPConnectCurlLike(t *testing.T) {
	echo := startEcho(t, "tcp4")
	_, addr := startProxy(t, Config{Resolve: mapResolver(map[string]netip.Addr{"db": echo.Addr()})}, nil)
	tests := []struct {
		name  string
		extra string // sent right after the request head, before the reply
	}{
		{"request then data", ""},
		{"data pipelined with request", "early bytes "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialProxy(t, addr)
			target := fmt.Sprintf("db:%d", echo.Port())
			fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: curl/8.5.0\r\nProxy-Connection: Keep-Alive\r\n\r\n%s",
				target, target, tt.extra)
			const want = "HTTP/1.1 200 Connection Established\r\n\r\n"
			got := make([]byte, len(want))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
				t.Fatalf("reply %q, %v; want %q", got, err, want)
			}
			if tt.extra != "" {
				echoed := make([]byte, len(tt.extra))
				if _, err := io.ReadFull(c, echoed); err != nil || string(echoed) != tt.extra {
					t.Fatalf("pipelined bytes came back as %q, %v", echoed, err)
				}
			}
			checkEcho(t, c, nil)
		})
	}
}

// proxiedClient returns an http.Client whose Transport uses the proxy at
// addr, built on base (nil: a fresh Transport); idle conns close at cleanup.
func proxiedClient(t *testing.T, addr string, base *http.Transport) *http.Client {
	t.Helper()
	tr := &http.Transport{}
	if base != nil {
		tr = base.Clone()
	}
	tr.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: addr})
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: testTimeout}
}

func TestHTTPAbsoluteURIThroughTransport(t *testing.T) {
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s host=%s body=%s proxy-auth=%q proxy-conn=%q",
			r.Method, r.RequestURI, r.Host, body, r.Header.Get("Proxy-Authorization"), r.Header.Get("Proxy-Connection"))
	}))
	t.Cleanup(web.Close)
	webAP := netip.MustParseAddrPort(web.Listener.Addr().String())
	_, addr := startProxy(t, Config{Resolve: mapResolver(map[string]netip.Addr{"web.warren.internal": webAP.Addr()})}, nil)
	client := proxiedClient(t, addr, nil)
	base := fmt.Sprintf("http://web.warren.internal:%d", webAP.Port())

	tests := []struct {
		name, method, path, body string
		header                   http.Header
		want                     string
	}{
		{"get", http.MethodGet, "/x?y=1", "", nil,
			fmt.Sprintf(`GET /x?y=1 host=web.warren.internal:%d body= proxy-auth="" proxy-conn=""`, webAP.Port())},
		{"post with proxy headers stripped", http.MethodPost, "/upload", "payload",
			http.Header{"Proxy-Authorization": {"Basic c2VjcmV0"}, "Proxy-Connection": {"keep-alive"}},
			fmt.Sprintf(`POST /upload host=web.warren.internal:%d body=payload proxy-auth="" proxy-conn=""`, webAP.Port())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, base+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header[k] = v
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK || string(got) != tt.want {
				t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, got, tt.want)
			}
			if !resp.Close {
				t.Errorf("response lacks Connection: close; the proxy serves one request per connection")
			}
		})
	}
}

func TestHTTPSConnectThroughTransport(t *testing.T) {
	web := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "tls %s", r.URL.Path)
	}))
	t.Cleanup(web.Close)
	webAP := netip.MustParseAddrPort(web.Listener.Addr().String())
	// httptest's certificate is valid for example.com.
	_, addr := startProxy(t, Config{Resolve: mapResolver(map[string]netip.Addr{"example.com": webAP.Addr()})}, nil)
	client := proxiedClient(t, addr, web.Client().Transport.(*http.Transport))

	for i := range 3 { // the tunnel carries several requests
		resp, err := client.Get(fmt.Sprintf("https://example.com:%d/p%d", webAP.Port(), i))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(got) != fmt.Sprintf("tls /p%d", i) {
			t.Fatalf("got %q, %v", got, err)
		}
	}
}

func TestHTTPUpgradeBecomesTunnel(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := serveConns(t, ln, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil || req.Header.Get("Upgrade") != "echo" {
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		_, _ = io.Copy(c, br)
		closeWrite(c)
	})
	_, addr := startProxy(t, Config{Resolve: mapResolver(map[string]netip.Addr{"ws": up.Addr()})}, nil)
	c := dialProxy(t, addr)
	fmt.Fprintf(c, "GET http://ws:%d/chat HTTP/1.1\r\nHost: ws\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n", up.Port())
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("got %v, %v; want 101", resp, err)
	}
	checkEcho(t, c, br)
}

func TestHTTPErrors(t *testing.T) {
	echo := startEcho(t, "tcp4")
	closed := closedPort(t)
	resolve := mapResolver(map[string]netip.Addr{"db": echo.Addr(), "gone": closed.Addr()})
	_, addr := startProxy(t, Config{Resolve: resolve}, nil)
	_, slowAddr := startProxy(t, Config{Resolve: resolve, Dial: blockingDialer(nil), DialTimeout: 20 * time.Millisecond}, nil)

	huge := "GET http://db/ HTTP/1.1\r\nHost: db\r\nX-Big: " + strings.Repeat("a", 20<<10) + "\r\n\r\n"
	tests := []struct {
		name     string
		proxy    string
		in       string
		wantCode int
		wantBody string
	}{
		{"connect unknown host", addr, "CONNECT db2:5432 HTTP/1.1\r\nHost: db2:5432\r\n\r\n",
			502, "warren: \"db2\": no such node, or not reachable under the current policy"},
		{"get unknown host", addr, "GET http://db2/x HTTP/1.1\r\nHost: db2\r\n\r\n",
			502, "warren: \"db2\": no such node, or not reachable under the current policy"},
		{"refused", addr, fmt.Sprintf("CONNECT gone:%d HTTP/1.1\r\n\r\n", closed.Port()), 502, "refused"},
		{"dial timeout", slowAddr, fmt.Sprintf("CONNECT db:%d HTTP/1.1\r\n\r\n", echo.Port()), 504, "timed out"},
		{"connect without port", addr, "CONNECT db HTTP/1.1\r\n\r\n", 400, "host:port"},
		{"connect to a path", addr, fmt.Sprintf("CONNECT /x HTTP/1.1\r\nHost: db:%d\r\n\r\n", echo.Port()), 400, "host:port"},
		{"origin-form request", addr, "GET /x HTTP/1.1\r\nHost: db\r\n\r\n", 400, "absolute URI"},
		{"https absolute URI", addr, "GET https://db/ HTTP/1.1\r\n\r\n", 400, "use CONNECT"},
		{"garbage text", addr, "HELLO THERE\r\n\r\n", 400, "malformed"},
		{"binary garbage", addr, "\x00\xff\x13\x37\x01\x02\r\n\r\n", 400, "malformed"},
		{"headers over limit", addr, huge, 431, "too large"},
		{"endless line", addr, strings.Repeat("G", 40<<10), 431, "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := exchange(t, tt.proxy, []byte(tt.in))
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), nil)
			if err != nil {
				t.Fatalf("proxy sent %q: %v", out, err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantCode || !strings.Contains(string(body), tt.wantBody) {
				t.Fatalf("got %d %q, want %d containing %q", resp.StatusCode, body, tt.wantCode, tt.wantBody)
			}
		})
	}
}

func TestSplitHostPort(t *testing.T) {
	tests := []struct {
		in, def  string
		host     string
		port     uint16
		wantFail bool
	}{
		{"db:5432", "", "db", 5432, false},
		{"[fd7a:115c:a1e0::1]:22", "", "fd7a:115c:a1e0::1", 22, false},
		{"db", "80", "db", 80, false},
		{"[::1]", "80", "::1", 80, false},
		{"db", "", "", 0, true},
		{"db:0", "", "", 0, true},
		{"db:99999", "", "", 0, true},
		{":80", "", "", 0, true},
		{"::1", "80", "", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			host, port, err := splitHostPort(tt.in, tt.def)
			if (err != nil) != tt.wantFail || host != tt.host || port != tt.port {
				t.Fatalf("splitHostPort(%q, %q) = %q, %d, %v", tt.in, tt.def, host, port, err)
			}
		})
	}
}
