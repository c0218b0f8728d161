package natlab_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/netns"
	"github.com/warrenmesh/warren/internal/tstest/netns/natlab"
)

// The STUN endpoints every test lab serves: two addresses, and a second
// port on the first.
var (
	stunA = netip.AddrPortFrom(natlab.PublicIP, 3478)
	stunB = netip.AddrPortFrom(natlab.PublicIP2, 3478)
	stunC = netip.AddrPortFrom(natlab.PublicIP, 3479)
)

// newLab builds a lab with STUN servers on stunA, stunB and stunC.
func newLab(t *testing.T, left, right natlab.NAT) *natlab.Lab {
	t.Helper()
	lab := natlab.New(t, left, right)
	startSTUN(t, lab.Public, stunA, stunB, stunC)
	t.Cleanup(func() {
		if t.Failed() {
			for _, s := range []*natlab.Site{lab.Left, lab.Right} {
				if s.Router != nil {
					t.Logf("conntrack of %s router (%v):\n%s", s.WANIP, s.Router.NAT(), s.Router.Conntrack())
				}
			}
		}
	})
	return lab
}

// sites names the sites of a lab for table-driven tests.
func sites(lab *natlab.Lab) []struct {
	name string
	site *natlab.Site
} {
	return []struct {
		name string
		site *natlab.Site
	}{{"left", lab.Left}, {"right", lab.Right}}
}

// TestConnectivity checks that a host behind every kind of NAT (and one
// with none) reaches an HTTP server in the public namespace over TCP, and
// that the server sees the site's WAN address as the source.
func TestConnectivity(t *testing.T) {
	t.Parallel()
	for _, kinds := range [][2]natlab.NAT{{natlab.EndpointIndependent, natlab.Symmetric}, {natlab.BlockUDP, natlab.None}} {
		t.Run(kinds[0].String()+"+"+kinds[1].String(), func(t *testing.T) {
			t.Parallel()
			lab := natlab.New(t, kinds[0], kinds[1])
			url := "http://" + serveHTTP(t, lab.Public, netip.AddrPortFrom(lab.PublicIP, 80)) + "/"
			for _, s := range sites(lab) {
				t.Run(s.name+"/go", func(t *testing.T) {
					got, err := httpGet(s.site.Host, url)
					if err != nil {
						t.Fatal(err)
					}
					if src := sourceIP(t, got); src != s.site.WANIP {
						t.Errorf("server saw %s; want the site's WAN address %s", got, s.site.WANIP)
					}
				})
				t.Run(s.name+"/curl", func(t *testing.T) {
					if _, err := exec.LookPath("curl"); err != nil {
						t.Skip("skipping: curl is not installed (apt-get install curl); the Go client covers this")
					}
					got, err := s.site.Host.TryRun("curl", "-sS", "--max-time", "5", url)
					if err != nil {
						t.Fatal(err)
					}
					if src := sourceIP(t, got); src != s.site.WANIP {
						t.Errorf("server saw %s; want the site's WAN address %s", got, s.site.WANIP)
					}
				})
			}
		})
	}
}

// serveHTTP serves, in ns on addr until the test ends, the client's
// address as the body of every response.
func serveHTTP(t *testing.T, ns *netns.Namespace, addr netip.AddrPort) string {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp4", addr.String()); return err }); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.RemoteAddr) }),
		ReadHeaderTimeout: 5 * time.Second,
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("HTTP server: %v", err)
		}
	})
	return addr.String()
}

// httpGet fetches url with a client whose connections are made inside ns.
func httpGet(ns *netns.Namespace, url string) (string, error) {
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		err = ns.Do(func() error {
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(body), err
}

func sourceIP(t *testing.T, remoteAddr string) netip.Addr {
	t.Helper()
	ap, err := netip.ParseAddrPort(strings.TrimSpace(remoteAddr))
	if err != nil {
		t.Fatalf("server's answer %q: %v", remoteAddr, err)
	}
	return ap.Addr()
}

// TestMapping checks each NAT kind's mapping with STUN, from one socket to
// three STUN endpoints (two addresses, two ports): endpoint-independent
// NAT shows one mapped address (the WAN address and, Linux keeping free
// ports, the socket's own port); symmetric NAT shows different ports;
// BlockUDP lets no answer through; without NAT the host's own address
// comes back.
func TestMapping(t *testing.T) {
	t.Parallel()
	for _, kinds := range [][2]natlab.NAT{{natlab.EndpointIndependent, natlab.Symmetric}, {natlab.BlockUDP, natlab.None}} {
		t.Run(kinds[0].String()+"+"+kinds[1].String(), func(t *testing.T) {
			t.Parallel()
			lab := newLab(t, kinds[0], kinds[1])
			for i, s := range sites(lab) {
				kind := kinds[i]
				t.Run(kind.String(), func(t *testing.T) {
					pc := listenUDP(t, s.site.Host)
					if kind == natlab.BlockUDP {
						if got, err := mapped(pc, stunA, time.Second); err == nil {
							t.Fatalf("STUN through BlockUDP answered %s; want no answer", got)
						}
						return
					}
					var got []netip.AddrPort
					for _, server := range []netip.AddrPort{stunA, stunB, stunC} {
						m, err := mapped(pc, server, 3*time.Second)
						if err != nil {
							t.Fatal(err)
						}
						if m.Addr() != s.site.WANIP {
							t.Errorf("mapped address from %s = %s; want the WAN address %s", server, m, s.site.WANIP)
						}
						got = append(got, m)
					}
					t.Logf("local port %d, mapped %v", localPort(pc), got)
					switch kind {
					case natlab.EndpointIndependent, natlab.None:
						want := netip.AddrPortFrom(s.site.WANIP, localPort(pc))
						for _, m := range got {
							if m != want {
								t.Errorf("mapped = %v; want %s from every server", got, want)
								break
							}
						}
					case natlab.Symmetric:
						if got[0] == got[1] && got[1] == got[2] {
							t.Errorf("mapped = %v; want different ports for different servers", got)
						}
					}
				})
			}
		})
	}
}

// TestRebind checks that FlushConntrack alone keeps a free port, that
// Rebind and ChangePorts move a flow to a new port in the new range while
// mapping stays endpoint-independent, and that SetNAT switches behaviour.
func TestRebind(t *testing.T) {
	t.Parallel()
	lab := newLab(t, natlab.EndpointIndependent, natlab.None)
	r := lab.Left.Router
	pc := listenUDP(t, lab.Left.Host)
	query := func(server netip.AddrPort) netip.AddrPort {
		t.Helper()
		m, err := mapped(pc, server, 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	first := query(stunA)
	if err := r.FlushConntrack(); err != nil {
		t.Fatal(err)
	}
	if m := query(stunA); m != first {
		t.Errorf("after FlushConntrack mapped = %s; want %s again (Linux keeps a free port)", m, first)
	}

	prev := first
	for range 2 {
		lo, hi, err := r.Rebind()
		if err != nil {
			t.Fatal(err)
		}
		m := query(stunA)
		if m.Addr() != lab.Left.WANIP || m.Port() < lo || m.Port() > hi || m == prev {
			t.Errorf("after Rebind to %d-%d mapped = %s (before %s); want a new port in the range", lo, hi, m, prev)
		}
		if m2 := query(stunB); m2 != m {
			t.Errorf("after Rebind mapped = %s and %s from two servers; want one mapping", m, m2)
		}
		prev = m
	}

	if err := r.ChangePorts(40000, 40009); err != nil {
		t.Fatal(err)
	}
	if m := query(stunC); m.Port() < 40000 || m.Port() > 40009 {
		t.Errorf("after ChangePorts(40000, 40009) mapped = %s", m)
	}
	if err := r.ChangePorts(0, 0); err != nil {
		t.Fatal(err)
	}
	if m := query(stunA); m != first {
		t.Errorf("after ChangePorts(0, 0) mapped = %s; want %s", m, first)
	}

	if err := r.SetNAT(natlab.BlockUDP); err != nil {
		t.Fatal(err)
	}
	if m, err := mapped(pc, stunA, time.Second); err == nil {
		t.Errorf("after SetNAT(BlockUDP) STUN answered %s", m)
	}
	if err := r.SetNAT(natlab.Symmetric); err != nil {
		t.Fatal(err)
	}
	if a, b, c := query(stunA), query(stunB), query(stunC); a == b && b == c {
		t.Errorf("after SetNAT(Symmetric) mapped = %s from every server", a)
	}
	if err := r.SetNAT(natlab.None); err == nil {
		t.Error("SetNAT(None) succeeded; want an error")
	}
	if got := r.NAT(); got != natlab.Symmetric {
		t.Errorf("NAT() = %v; want symmetric", got)
	}
}
