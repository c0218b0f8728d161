package netcheck

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"go.uber.org/goleak"

	"github.com/warrenmesh/warren/internal/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// responder is a small pion-based STUN server on loopback for tests.
type responder struct {
	pc       *net.UDPConn
	addr     netip.AddrPort
	requests atomic.Int32
	done     chan struct{}
}

// responderOpts shape how a responder answers.
type responderOpts struct {
	silent    bool          // read requests, never answer (UDP black hole)
	portDelta int           // lie about the mapped port (symmetric NAT)
	delay     time.Duration // simulated path latency before each answer
}

// newResponder starts a responder; it stops at the end of the test.
func newResponder(t *testing.T, o responderOpts) *responder {
	t.Helper()
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	r := &responder{pc: pc, addr: pc.LocalAddr().(*net.UDPAddr).AddrPort(), done: make(chan struct{})}
	go r.serve(t, o)
	t.Cleanup(func() {
		pc.Close()
		<-r.done
	})
	return r
}

func (r *responder) serve(t *testing.T, o responderOpts) {
	defer close(r.done)
	buf := make([]byte, 1500)
	for {
		n, from, err := r.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("responder read: %v", err)
			}
			return
		}
		var req stun.Message
		if err := stun.Decode(buf[:n], &req); err != nil || req.Type != stun.BindingRequest {
			t.Errorf("responder got a non-Binding-request: %v %v", req.Type, err)
			continue
		}
		r.requests.Add(1)
		if o.silent {
			continue
		}
		time.Sleep(o.delay) // simulated latency, not synchronisation
		resp := stun.MustBuild(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
			&stun.XORMappedAddress{IP: from.Addr().AsSlice(), Port: int(from.Port()) + o.portDelta},
			stun.Fingerprint)
		if _, err := r.pc.WriteToUDPAddrPort(resp.Raw, from); err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("responder write: %v", err)
		}
	}
}

// newProbeServer returns an httptest relay whose /derp/probe answers with
// status; its client is closed with it.
func newProbeServer(t *testing.T, status int) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/derp/probe" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// fastConfig is a Config with short retries, so tests with silent servers
// end quickly.
func fastConfig(client *http.Client) Config {
	return Config{
		Timeout:    time.Second,
		Retries:    []time.Duration{20 * time.Millisecond, 40 * time.Millisecond},
		HTTPClient: client,
	}
}

// checker opens a loopback UDP socket and a Checker over it, the way the
// node's engine does over its WireGuard socket: the Checker writes through
// Config.Conn, and a reader hands every packet to HandleSTUN. Both end at
// the end of the test; it returns the socket's address.
func checker(t *testing.T, cfg Config) (*Checker, netip.AddrPort) {
	t.Helper()
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	cfg.Conn = pc
	c := NewChecker(cfg)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err == nil {
				c.HandleSTUN(buf[:n], from)
			}
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	return c, pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

func region(id int, code, url string, stuns ...*responder) wire.DERPRegion {
	reg := wire.DERPRegion{ID: id, Code: code, URL: url}
	for _, s := range stuns {
		reg.STUN = append(reg.STUN, s.addr.String())
	}
	return reg
}

func mustRun(t *testing.T, c *Checker, m *wire.DERPMap) *Report {
	t.Helper()
	rep, err := c.Run(context.Background(), m)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := c.inFlight(); n != 0 {
		t.Errorf("%d transactions still pending after Run", n)
	}
	t.Logf("report:\n%s", rep)
	return rep
}

// nopConn swallows writes.
type nopConn struct {
	mu   sync.Mutex
	sent int
}

func (n *nopConn) WriteToUDPAddrPort(b []byte, _ netip.AddrPort) (int, error) {
	n.mu.Lock()
	n.sent++
	n.mu.Unlock()
	return len(b), nil
}

// failConn fails every write.
type failConn struct{}

func (failConn) WriteToUDPAddrPort([]byte, netip.AddrPort) (int, error) {
	return 0, errors.New("network is unreachable")
}
