package daemon_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/internal/proxyproto"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/tstest/testmesh"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/daemon"
	"github.com/warrenmesh/warren/node/expose"
	"github.com/warrenmesh/warren/node/localapi"
)

// identityPolicy lets every node reach every port; ann owns tag:ci.
// ann is in group:eng; a node reporting node:os linux passes
// posture:linux.
const identityPolicy = `{
	"groups": {"group:eng": ["ann@example.com"]},
	"tagOwners": {"tag:ci": ["ann@example.com"]},
	"postures": {"posture:linux": ["node:os == 'linux'"]},
	"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
}`

// linuxPosture reports node:os linux, whatever the OS.
func linuxPosture(context.Context) map[string]wire.PostureValue {
	return map[string]wire.PostureValue{"node:os": {Value: "linux", CollectedAt: time.Now().UTC()}}
}

// identityMesh starts a mesh with ann's key and a tag:ci key.
func identityMesh(t *testing.T) (m *testmesh.Mesh, annKey, ciKey string) {
	m = testmesh.New(t, testmesh.Options{Policy: identityPolicy})
	u := m.User("ann@example.com")
	return m, m.AuthKey(registry.AuthKeyRequest{UserID: u.ID, Reusable: true}),
		m.AuthKey(registry.AuthKeyRequest{UserID: u.ID, Reusable: true, Tags: []string{"tag:ci"}})
}

// upTagged is up for a node that asks for tags.
func upTagged(t *testing.T, n *node, m *testmesh.Mesh, hostname, authKey string, tags ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := n.api.Up(ctx, localapi.UpRequest{Coordinator: m.URL, AuthKey: authKey, Hostname: hostname, Tags: tags}, nil); err != nil {
		t.Fatalf("up %s: %v", hostname, err)
	}
}

// meshHTTP is an HTTP client that reaches the mesh through n's local API.
func meshHTTP(n *node) *http.Client {
	return &http.Client{Timeout: wait, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) { return n.api.Dial(ctx, addr) }}}
}

// seen is what the test web app reports about a request.
type seen struct {
	Headers http.Header    `json:"headers"`
	WhoIs   localapi.WhoIs `json:"whois"`
	Err     string         `json:"err,omitempty"`
}

// identityApp is a web app on loopback that answers with the headers it
// got and what the node's whois says of r.RemoteAddr; /upgrade switches
// to an echo stream; /early answers 201 after the first line of the body
// and the byte count once it ends.
func identityApp(t *testing.T, api func() *localapi.Client) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		out := seen{Headers: r.Header}
		var err error
		if out.WhoIs, err = api().WhoIs(r.Context(), r.RemoteAddr); err != nil {
			out.Err = err.Error()
		}
		_ = json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("/upgrade", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want Upgrade: echo", http.StatusBadRequest)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprint(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		_ = brw.Flush()
		line, _ := brw.ReadString('\n')
		fmt.Fprint(c, "echo: "+line)
	})
	mux.HandleFunc("/early", func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex()
		br := bufio.NewReader(r.Body)
		if _, err := br.ReadString('\n'); err != nil {
			return
		}
		w.WriteHeader(http.StatusCreated)
		_ = http.NewResponseController(w).Flush()
		n, _ := io.Copy(io.Discard, br)
		fmt.Fprintf(w, "rest %d", n)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: wait}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// TestExposeHTTPIdentity: a web app behind --expose 80=APP,http-identity
// gets the caller's identity in Warren-* headers (a user's node: login;
// a tagged node: tags and no user), never the ones the client forged,
// X-Forwarded-For is the caller's mesh address, and the node's whois for
// the app's r.RemoteAddr names the caller. Upgrades and a streamed upload
// answered early work through it.
func TestExposeHTTPIdentity(t *testing.T) {
	m, annKey, ciKey := identityMesh(t)
	var server *node
	app := identityApp(t, func() *localapi.Client { return server.api })
	server = startNode(t, t.TempDir(), daemon.Config{Expose: []daemon.Expose{{Port: 80, Target: app, Mode: expose.HTTPIdentity}}})
	laptop := startNode(t, t.TempDir(), daemon.Config{PostureCollect: linuxPosture})
	ci := startNode(t, t.TempDir(), daemon.Config{PostureCollect: func(context.Context) map[string]wire.PostureValue {
		return map[string]wire.PostureValue{"node:os": {Value: "windows", CollectedAt: time.Now().UTC()}}
	}})
	up(t, server, m, "server", annKey)
	lst := up(t, laptop, m, "laptop", annKey)
	upTagged(t, ci, m, "ci", ciKey, "tag:ci")
	waitPeers(t, server, 2)
	waitPeers(t, laptop, 2)
	waitPeers(t, ci, 2)
	// The laptop's posture reaches the coordinator, then the server's
	// netmap.
	poll.Until(t, wait, "the server to see the laptop pass posture:linux", func() error {
		w, err := server.api.WhoIs(context.Background(), lst.Self.Addresses[0].Addr().String())
		if err != nil || !slices.Equal(w.Postures, []string{"posture:linux"}) {
			return fmt.Errorf("whois laptop: %+v, %v", w, err)
		}
		return nil
	})

	tests := []struct {
		from                                *node
		name, login, tags, groups, postures string
	}{
		{laptop, "laptop", "ann@example.com", "", "group:eng", "posture:linux"},
		{ci, "ci", "", "tag:ci", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := tt.from.api.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			meshAddr := st.Self.Addresses[0].Addr().String()
			req, _ := http.NewRequest(http.MethodGet, "http://server/", nil)
			req.Header.Set("Warren-User-Login", "mallory@example.com")
			req.Header["warren-tags"] = []string{"tag:admin"}
			req.Header.Set("Warren-Anything", "forged")
			req.Header.Set("X-Forwarded-For", "203.0.113.9")
			req.Header.Set("Forwarded", "for=203.0.113.9")
			resp, err := meshHTTP(tt.from).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var got seen
			err = json.NewDecoder(resp.Body).Decode(&got)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: %v", resp.Status, err)
			}
			h := got.Headers
			want := map[string]string{"Warren-User-Login": tt.login, "Warren-Node": tt.name, "Warren-Tags": tt.tags,
				"Warren-Anything": "", "X-Forwarded-For": meshAddr, "Forwarded": ""}
			for k, v := range want {
				if g := strings.Join(h.Values(k), "|"); g != v {
					t.Errorf("app got %s: %q, want %q", k, g, v)
				}
			}
			for k := range h {
				if strings.HasPrefix(strings.ToLower(k), "warren-") && want[k] == "" {
					t.Errorf("app got header %s: %q", k, h[k])
				}
			}
			w := got.WhoIs
			if got.Err != "" || w.Node.Name != tt.name || w.User != tt.login || strings.Join(w.Tags, ",") != tt.tags ||
				w.Via != "expose 80 http-identity" || w.Port != 80 || w.Rule != "acls[0]" || w.MeshSource.Addr().String() != meshAddr ||
				strings.Join(w.Groups, ",") != tt.groups || strings.Join(w.Postures, ",") != tt.postures {
				t.Errorf("whois from the app: %+v (error %q)", w, got.Err)
			}
		})
	}

	t.Run("upgrade", func(t *testing.T) {
		c, err := laptop.api.Dial(context.Background(), "server:80")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprint(c, "GET /upgrade HTTP/1.1\r\nHost: server\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: %v %v", resp, err)
		}
		fmt.Fprint(c, "ping\n")
		if line, err := br.ReadString('\n'); line != "echo: ping\n" {
			t.Errorf("after the upgrade: %q, %v", line, err)
		}
	})

	t.Run("early answer", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		req, _ := http.NewRequest(http.MethodPost, "http://server/early", pr)
		go func() { _, _ = io.WriteString(pw, "header\n") }()
		resp, err := meshHTTP(laptop).Do(req) // returns on the 201, the body still open
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("status %s", resp.Status)
		}
		if _, err := io.WriteString(pw, strings.Repeat("x", 1000)); err != nil {
			t.Fatal(err)
		}
		pw.Close()
		b, err := io.ReadAll(resp.Body)
		if string(b) != "rest 1000" {
			t.Errorf("after the early answer: %q, %v", b, err)
		}
	})
}

// TestExposeProxyProtocol: a service behind --expose 5432=SVC,proxy-protocol
// reads a PROXY v2 header carrying the caller's mesh address and port and
// the identity TLV; one behind plain --expose gets none. The node's whois
// answers for both connections as the service sees them, and for the
// caller's mesh address with the exposed port.
func TestExposeProxyProtocol(t *testing.T) {
	m, annKey, _ := identityMesh(t)
	type got struct {
		hdr   proxyproto.Header
		whois localapi.WhoIs
		first string
		err   error
	}
	var server *node
	serve := func(withHeader bool) (string, chan got) {
		ch := make(chan got, 1)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			var g got
			br := bufio.NewReader(c)
			if withHeader {
				g.hdr, g.err = proxyproto.ReadV2(br)
			}
			g.first, _ = br.ReadString('\n')
			if g.err == nil {
				g.whois, g.err = server.api.WhoIs(context.Background(), c.RemoteAddr().String())
			}
			fmt.Fprint(c, "ok\n")
			ch <- g
		}()
		return ln.Addr().String(), ch
	}
	ppAddr, ppSeen := serve(true)
	plainAddr, plainSeen := serve(false)
	server = startNode(t, t.TempDir(), daemon.Config{Expose: []daemon.Expose{
		{Port: 5432, Target: ppAddr, Mode: expose.ProxyProtocol}, {Port: 6000, Target: plainAddr}}})
	laptop := startNode(t, t.TempDir(), daemon.Config{})
	up(t, server, m, "server", annKey)
	st := up(t, laptop, m, "laptop", annKey)
	waitPeers(t, laptop, 1)
	srvSt := waitPeers(t, server, 1)
	laptopAddr, serverAddr := st.Self.Addresses[0].Addr(), srvSt.Self.Addresses[0].Addr()

	for _, tt := range []struct {
		port uint16
		seen chan got
		mode string
	}{{5432, ppSeen, "proxy-protocol"}, {6000, plainSeen, "tcp"}} {
		t.Run(tt.mode, func(t *testing.T) {
			c, err := laptop.api.Dial(context.Background(), fmt.Sprintf("server:%d", tt.port))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprint(c, "hello\n")
			if line, err := bufio.NewReader(c).ReadString('\n'); line != "ok\n" {
				t.Fatalf("reply %q, %v", line, err)
			}
			g := <-tt.seen
			if g.err != nil || g.first != "hello\n" {
				t.Fatalf("service: %+v", g)
			}
			w := g.whois
			if w.Node.Name != "laptop" || w.User != "ann@example.com" || w.Via != fmt.Sprintf("expose %d %s", tt.port, tt.mode) ||
				w.Rule != "acls[0]" || w.MeshSource.Addr() != laptopAddr {
				t.Errorf("whois: %+v", w)
			}
			if tt.mode != "proxy-protocol" {
				return
			}
			h := g.hdr
			if h.Src != w.MeshSource || h.Dst != netip.AddrPortFrom(serverAddr, 5432) {
				t.Errorf("header %s -> %s, want %s -> %s:5432", h.Src, h.Dst, w.MeshSource, serverAddr)
			}
			id, ok, err := h.Identity()
			if !ok || err != nil || id.User != "ann@example.com" || id.Node != "laptop" || len(id.Tags) != 0 {
				t.Errorf("identity TLV: %+v, %v, %v", id, ok, err)
			}
		})
	}

	// The caller's mesh address, with and without the port it came to.
	w, err := server.api.WhoIs(context.Background(), netip.AddrPortFrom(laptopAddr, 5432).String())
	if err != nil || w.Node.Name != "laptop" || w.Rule != "acls[0]" || w.Via != "mesh" || w.Port != 5432 {
		t.Errorf("whois mesh address:port: %+v, %v", w, err)
	}
	if w, err := server.api.WhoIs(context.Background(), laptopAddr.String()); err != nil || w.Node.Name != "laptop" || w.Rule != "" {
		t.Errorf("whois mesh address: %+v, %v", w, err)
	}
	for _, bad := range []string{"100.64.99.99", "127.0.0.1:1"} {
		if _, err := server.api.WhoIs(context.Background(), bad); err == nil || !errorsIsNotFound(err) {
			t.Errorf("whois %s: %v, want not found", bad, err)
		}
	}
}

func errorsIsNotFound(err error) bool { return errors.Is(err, localapi.ErrNotFound) }
