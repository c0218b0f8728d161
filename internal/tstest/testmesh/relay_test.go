package testmesh

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/derp"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/controlclient"
)

// pairWith starts two data-plane nodes of one user with the given options
// and waits until each sees the other with a home relay region (when the
// mesh has relays) and endpoints.
func pairWith(t *testing.T, m *Mesh, o NodeOptions, relays bool) (a, b *Node) {
	t.Helper()
	u := m.User("ann@example.com")
	o.AuthKey = m.AuthKey(registry.AuthKeyRequest{UserID: u.ID, Reusable: true})
	a, b = m.AddNode("laptop", o), m.AddNode("server", o)
	for _, n := range []*Node{a, b} {
		must(t, n.WaitFor(wait, func(nm *controlclient.Netmap) bool {
			return len(nm.Peers) == 1 && n.Engine() != nil && len(nm.Peers[0].Endpoints) > 0 &&
				(!relays || nm.Peers[0].HomeRelay != 0)
		}))
	}
	return a, b
}

// peerKey returns n's only peer's node key.
func peerKey(n *Node) key.NodePublic { return n.Netmap().Peers[0].NodeKey }

// transfer sends size random bytes through c to an echo server and checks
// they come back intact.
func transfer(t *testing.T, c net.Conn, size int) {
	t.Helper()
	data := make([]byte, size)
	_, _ = rand.Read(data)
	_ = c.SetDeadline(time.Now().Add(wait))
	errc := make(chan error, 1)
	go func() { _, err := c.Write(data); errc <- err }()
	got := make([]byte, size)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("transfer: read: %v", err)
	}
	must(t, <-errc)
	if !bytes.Equal(got, data) {
		t.Fatal("transfer: data corrupted")
	}
}

// waitPath waits until src's path to its peer satisfies ok, and returns
// how long that took.
func waitPath(t *testing.T, src *Node, within time.Duration, ok func(path string) bool) time.Duration {
	t.Helper()
	k := peerKey(src)
	return poll.Until(t, within, src.Name+": path", func() error {
		if p := src.Engine().Path(k); !ok(p) {
			return fmt.Errorf("still %q", p)
		}
		return nil
	})
}

func TestDirectPathUpgrade(t *testing.T) {
	m := New(t, Options{})
	a, b := pairWith(t, m, NodeOptions{DataPlane: true}, true)
	echoOn(t, b, 7)
	start := time.Now()
	c, err := dialWithin(a, netip.AddrPortFrom(addr4(t, b), 7), wait)
	must(t, err)
	defer c.Close()
	transfer(t, c, 64<<10)
	direct := func(p string) bool { return strings.HasPrefix(p, "direct 127.0.0.1:") }
	// Direct within 5 s of the first packet (well under a second when the
	// machine is idle; the time taken is logged).
	waitPath(t, a, 5*time.Second-time.Since(start), direct)
	waitPath(t, b, 5*time.Second-time.Since(start), direct)
	t.Logf("direct both ways %v after the first packet", time.Since(start))
	transfer(t, c, 1<<20)
}

func TestRelayOnlyCarriesTraffic(t *testing.T) {
	m := New(t, Options{})
	a, b := pairWith(t, m, NodeOptions{DataPlane: true, RelayOnly: true}, true)
	echoOn(t, b, 7)
	c, err := dialWithin(a, netip.AddrPortFrom(addr4(t, b), 7), wait)
	must(t, err)
	defer c.Close()
	transfer(t, c, 1<<20)
	for _, n := range []*Node{a, b} {
		if p := n.Engine().Path(peerKey(n)); p != "relay "+coordinator.DefaultRelayRegionCode {
			t.Fatalf("%s: path %q, want the embedded relay", n.Name, p)
		}
	}
	if st := m.Coord.Relay().Stats(); st.Clients != 2 {
		t.Fatalf("relay has %d clients, want 2", st.Clients)
	}
}

// relayRegion is a standalone relay serving one region of a test mesh.
type relayRegion struct {
	srv  *derp.Server
	http *httptest.Server
	wire wire.DERPRegion
}

func TestRelayRegionFailover(t *testing.T) {
	var m *Mesh // the relays ask its registry, once it exists
	admit := func(ctx context.Context, k key.NodePublic) (bool, error) {
		return m.Coord.Registry().AdmitRelay(ctx, k)
	}
	var regions []wire.DERPRegion
	var relays []*relayRegion
	for i, code := range []string{"ams", "fra"} {
		srv, err := derp.NewServer(derp.ServerConfig{Admit: admit})
		must(t, err)
		hs := httptest.NewServer(srv)
		r := &relayRegion{srv: srv, http: hs, wire: wire.DERPRegion{ID: i + 1, Code: code, URL: hs.URL + "/derp"}}
		relays = append(relays, r)
		regions = append(regions, r.wire)
		t.Cleanup(func() { srv.Close(); hs.Close() })
	}
	m = New(t, Options{Coordinator: coordinator.Config{Relay: coordinator.RelayConfig{Disable: true, Regions: regions}}})
	a, b := pairWith(t, m, NodeOptions{DataPlane: true, RelayOnly: true}, true)
	echoOn(t, b, 7)
	c, err := dialWithin(a, netip.AddrPortFrom(addr4(t, b), 7), wait)
	must(t, err)
	defer c.Close()
	transfer(t, c, 256<<10)

	// Take down a's home region; b may share it or not.
	home := a.Engine().HomeRegion()
	dead := relays[home-1]
	dead.http.CloseClientConnections()
	dead.http.Close()
	dead.srv.Close()
	start := time.Now()
	for _, n := range []*Node{a, b} {
		poll.Until(t, wait, fmt.Sprintf("%s and its peer off region %d", n.Name, home), func() error {
			peer := n.Netmap().Peers[0].HomeRelay
			if n.Engine().HomeRegion() != home && peer != home && peer != 0 {
				return nil
			}
			return fmt.Errorf("home region %d, peer's %d", n.Engine().HomeRegion(), peer)
		})
	}
	transfer(t, c, 256<<10) // the connection from before the failure survives
	t.Logf("moved off region %d in %v", home, time.Since(start))
	c2, err := dialWithin(a, netip.AddrPortFrom(addr4(t, b), 7), wait)
	must(t, err)
	defer c2.Close()
	transfer(t, c2, 64<<10)
}
