package expose

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/warrenmesh/warren/internal/proxyproto"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 10 * time.Second

// front serves cfg on a loopback listener standing in for the mesh
// listener (the "mesh" source is then 127.0.0.1) until the test ends, and
// returns its address.
func front(t testing.TB, cfg Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// peers answers for 127.0.0.1 with n.
func peers(n wire.Node) func(netip.Addr) (wire.Node, bool) {
	return func(a netip.Addr) (wire.Node, bool) { return n, a == netip.MustParseAddr("127.0.0.1") }
}

// backend serves h on loopback until the test ends.
func backend(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: wait}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return ln.Addr().String()
}

func get(t *testing.T, addr string, hdr map[string]string) (int, http.Header) {
	t.Helper()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Transport: tr, Timeout: wait}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header
}

// echoHeaders answers with the request's headers as its own, prefixed
// "Got-".
var echoHeaders = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	for k, v := range r.Header {
		w.Header()["Got-"+k] = v
	}
})

func TestHTTPIdentityHeaders(t *testing.T) {
	tests := []struct {
		name string
		node wire.Node
		want map[string]string // "" = absent
	}{
		{"user with a non-ASCII name", wire.Node{ID: 2, Name: "ann-laptop", User: "ann@example.com", UserName: "Änn Exämple"},
			map[string]string{"Got-Warren-User-Login": "ann@example.com", "Got-Warren-User-Name": "=?utf-8?q?=C3=84nn_Ex=C3=A4mple?=",
				"Got-Warren-Node": "ann-laptop", "Got-Warren-Tags": "", "Got-X-Forwarded-For": "127.0.0.1", "Got-X-Forwarded-Host": "", "Got-Forwarded": "", "Got-Warren-Extra": ""}},
		{"user with an ASCII name", wire.Node{ID: 2, Name: "bob-pc", User: "bob@example.com", UserName: "Bob"},
			map[string]string{"Got-Warren-User-Login": "bob@example.com", "Got-Warren-User-Name": "Bob", "Got-Warren-Tags": ""}},
		{"tagged node", wire.Node{ID: 3, Name: "ci", User: "ann@example.com", UserName: "Ann", Tags: []string{"tag:ci", "tag:prod"}},
			map[string]string{"Got-Warren-User-Login": "", "Got-Warren-User-Name": "", "Got-Warren-Node": "ci", "Got-Warren-Tags": "tag:ci,tag:prod"}},
	}
	forged := map[string]string{"Warren-User-Login": "mallory", "WARREN-TAGS": "tag:admin", "Warren-Extra": "x",
		"X-Forwarded-For": "203.0.113.1", "X-Forwarded-Host": "evil.example", "Forwarded": "for=203.0.113.1", "Connection": "Warren-Node"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := front(t, Config{Port: 80, Target: backend(t, echoHeaders), Mode: HTTPIdentity, Peer: peers(tt.node), Conns: &Conns{}})
			code, h := get(t, addr, forged)
			if code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			for k, v := range tt.want {
				if got := strings.Join(h.Values(k), "|"); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestHTTPIdentityUnknownSource(t *testing.T) {
	conns := &Conns{}
	addr := front(t, Config{Port: 80, Target: backend(t, echoHeaders), Mode: HTTPIdentity, Conns: conns,
		Peer: func(netip.Addr) (wire.Node, bool) { return wire.Node{}, false }})
	if code, _ := get(t, addr, nil); code != http.StatusForbidden {
		t.Errorf("status %d, want 403", code)
	}
}

// TestShutdownEndsEverything: Serve returns with an upgraded stream and an
// idle keep-alive connection open, closes both, and forgets them (goleak
// checks the goroutines in TestMain).
func TestShutdownEndsEverything(t *testing.T) {
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/upgrade" {
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprint(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		_ = brw.Flush()
		_, _ = io.Copy(c, brw) // until the node closes
	}))
	hold := holdServer(t)
	for _, mode := range []Mode{HTTPIdentity, ProxyProtocol, Plain} {
		t.Run(mode.String(), func(t *testing.T) {
			conns := &Conns{}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			target := app
			if mode != HTTPIdentity {
				target = hold
			}
			go func() {
				done <- Serve(ctx, ln, Config{Port: 80, Target: target, Mode: mode, Peer: peers(wire.Node{ID: 2, Name: "a"}), Conns: conns})
			}()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprint(c, "GET /upgrade HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			if mode == HTTPIdentity {
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
					t.Fatalf("upgrade: %v, %v", resp, err)
				}
			}
			poll.Until(t, wait, "the connection recorded", func() error {
				if conns.Len() != 1 {
					return fmt.Errorf("%d connections recorded", conns.Len())
				}
				return nil
			})
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
			if n := conns.Len(); n != 0 {
				t.Errorf("%d connections still recorded after Serve returned", n)
			}
		})
	}
}

// TestProxyProtocolHeader: the target reads the header first, then the
// client's bytes; the recorded connection is the one the target sees. A
// source the netmap does not know gets a header with no identity.
func TestProxyProtocolHeader(t *testing.T) {
	for _, known := range []bool{true, false} {
		t.Run(fmt.Sprintf("known=%v", known), func(t *testing.T) { testProxyProtocolHeader(t, known) })
	}
}

func testProxyProtocolHeader(t *testing.T, known bool) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type seen struct {
		h      proxyproto.Header
		remote netip.AddrPort
		line   string
		err    error
	}
	ch := make(chan seen, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- seen{err: err}
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		var s seen
		s.remote = c.RemoteAddr().(*net.TCPAddr).AddrPort()
		if s.h, s.err = proxyproto.ReadV2(br); s.err == nil {
			s.line, s.err = br.ReadString('\n')
		}
		ch <- s
		_, _ = io.Copy(io.Discard, br)
	}()
	conns := &Conns{}
	n := wire.Node{ID: 7, Name: "ci", Tags: []string{"tag:ci"}, User: "ann@example.com"}
	peer := peers(n)
	if !known {
		peer = func(netip.Addr) (wire.Node, bool) { return wire.Node{}, false }
	}
	addr := front(t, Config{Port: 5432, Target: ln.Addr().String(), Mode: ProxyProtocol, Peer: peer, Conns: conns})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "hello\n")
	s := <-ch
	if s.err != nil || s.line != "hello\n" {
		t.Fatalf("target: %+v", s)
	}
	if s.h.Src != c.LocalAddr().(*net.TCPAddr).AddrPort() || s.h.Dst.String() != addr {
		t.Errorf("header %s -> %s, want %s -> %s", s.h.Src, s.h.Dst, c.LocalAddr(), addr)
	}
	id, ok, err := s.h.Identity()
	if !known {
		if ok || len(s.h.TLVs) != 0 || conns.Len() != 0 {
			t.Errorf("unknown source: TLVs %v, %d connections recorded", s.h.TLVs, conns.Len())
		}
		return
	}
	if !ok || err != nil || id.Node != "ci" || id.User != "" || strings.Join(id.Tags, ",") != "tag:ci" {
		t.Errorf("identity %+v, %v, %v (a tagged node carries no user)", id, ok, err)
	}
	rec, ok := conns.Lookup(s.remote)
	if !ok || rec.Node != 7 || rec.Port != 5432 || rec.Mode != ProxyProtocol || rec.Src != s.h.Src {
		t.Errorf("recorded %+v, %v", rec, ok)
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"": Plain, "tcp": Plain, "http-identity": HTTPIdentity, "Proxy-Protocol": ProxyProtocol} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseMode("https"); err == nil {
		t.Error("ParseMode(https) succeeded")
	}
}

// holdServer accepts TCP connections on loopback and reads each until the
// other side closes it, until the test ends.
func holdServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(io.Discard, c) }() // ends when the node closes c
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// TestPlainUnknownSource: plain TCP forwards a source the netmap does
// not know, as before the modes existed.
func TestPlainUnknownSource(t *testing.T) {
	addr := front(t, Config{Port: 80, Target: backend(t, echoHeaders), Conns: &Conns{},
		Peer: func(netip.Addr) (wire.Node, bool) { return wire.Node{}, false }})
	if code, h := get(t, addr, map[string]string{"Warren-Node": "x"}); code != http.StatusOK || h.Get("Got-Warren-Node") != "x" {
		t.Errorf("plain: %d %v", code, h)
	}
}
