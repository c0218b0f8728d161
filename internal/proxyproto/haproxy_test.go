package proxyproto_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/warrenmesh/warren/internal/proxyproto"
	"github.com/warrenmesh/warren/internal/tstest/lb"
)

// TestHAProxyAcceptsHeader checks the writer against a real consumer:
// HAProxy with "accept-proxy" reads the header Warren sends and puts the
// source address it carries into X-Forwarded-For for the backend.
func TestHAProxyAcceptsHeader(t *testing.T) {
	seen := make(chan string, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("X-Forwarded-For")
		fmt.Fprint(w, "ok")
	}))
	defer backend.Close()
	h := lb.StartConfig(t, func(listen, sock string) string {
		return fmt.Sprintf(`global
    stats socket %s mode 600 level admin

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend mesh
    bind %s accept-proxy
    option forwardfor
    default_backend app

backend app
    server app %s
`, sock, listen, backend.Listener.Addr())
	})
	addr := h.URL[len("http://"):]
	tests := []struct{ src, dst string }{
		{"100.64.0.7:40001", "100.64.0.1:80"},
		{"[fd7a:115c:a1e0::7]:40002", "[fd7a:115c:a1e0::1]:80"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			id, err := proxyproto.IdentityTLV(proxyproto.Identity{User: "ann@example.com", Node: "ann-laptop"})
			if err != nil {
				t.Fatal(err)
			}
			src := netip.MustParseAddrPort(tt.src)
			err = proxyproto.WriteV2(c, proxyproto.Header{Src: src, Dst: netip.MustParseAddrPort(tt.dst), TLVs: []proxyproto.TLV{id}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			resp, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			select {
			case xff := <-seen:
				if xff != src.Addr().String() {
					t.Errorf("X-Forwarded-For %q, want the header's source %s", xff, src.Addr())
				}
			default:
				t.Fatalf("the backend saw no request; HAProxy answered %q", resp)
			}
		})
	}
}
