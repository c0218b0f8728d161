//go:build !windows

package localapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// fakeBackend is a Backend that records its calls and answers from its
// fields. Set the fields before the server starts.
type fakeBackend struct {
	status   Status
	upSteps  []string
	upGate   chan struct{} // if set, Up waits on it after the steps
	ping     PingReport
	netcheck NetcheckReport
	addrs    map[string]netip.Addr
	// dialed receives the far end of each successful Dial.
	dialed chan net.Conn
	// whois answers WhoIs by address.
	whois map[string]WhoIs

	// quiet turns off recording, for fuzzing.
	quiet bool

	upErr, downErr, logoutErr, pingErr, netcheckErr, resolveErr, dialErr error

	mu    sync.Mutex
	calls []string
	ups   []UpRequest
	pings []PingRequest
	dials []string
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{
		status:   Status{State: StateRunning, Mode: "userspace", Peers: []PeerStatus{}},
		upSteps:  []string{"fetching key", "registering"},
		ping:     PingReport{Peer: "web", Address: netip.MustParseAddr("100.64.0.2"), Path: "direct", Results: []PingResult{{Kind: "wireguard", Seq: 1, RTT: time.Millisecond}}},
		netcheck: NetcheckReport{ListenPort: 41641, Endpoints: []string{"192.0.2.1:41641"}, NAT: "none", ControlChannelOpen: true},
		addrs:    map[string]netip.Addr{"web": netip.MustParseAddr("100.64.0.2")},
		dialed:   make(chan net.Conn, 16),
	}
}

func (b *fakeBackend) record(call string) {
	if b.quiet {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, call)
}

// requests returns copies of the Up, Ping and Dial requests so far.
func (b *fakeBackend) requests() (ups []UpRequest, pings []PingRequest, dials []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.ups), slices.Clone(b.pings), slices.Clone(b.dials)
}

// Calls returns the backend methods called so far, in order.
func (b *fakeBackend) Calls() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.calls)
}

func (b *fakeBackend) Up(ctx context.Context, req UpRequest, progress func(string)) (Status, error) {
	b.record("Up")
	if !b.quiet {
		b.mu.Lock()
		b.ups = append(b.ups, req)
		b.mu.Unlock()
	}
	for _, s := range b.upSteps {
		progress(s)
	}
	if b.upGate != nil {
		select {
		case <-b.upGate:
		case <-ctx.Done():
			return Status{}, ctx.Err()
		}
	}
	if b.upErr != nil {
		return Status{}, b.upErr
	}
	return b.status, nil
}

func (b *fakeBackend) Down(context.Context) error {
	b.record("Down")
	return b.downErr
}

func (b *fakeBackend) Logout(context.Context) error {
	b.record("Logout")
	return b.logoutErr
}

func (b *fakeBackend) Status(context.Context) Status {
	b.record("Status")
	return b.status
}

func (b *fakeBackend) Ping(_ context.Context, req PingRequest) (PingReport, error) {
	b.record("Ping")
	if !b.quiet {
		b.mu.Lock()
		b.pings = append(b.pings, req)
		b.mu.Unlock()
	}
	if b.pingErr != nil {
		return PingReport{}, b.pingErr
	}
	return b.ping, nil
}

func (b *fakeBackend) Netcheck(context.Context) (NetcheckReport, error) {
	b.record("Netcheck")
	if b.netcheckErr != nil {
		return NetcheckReport{}, b.netcheckErr
	}
	return b.netcheck, nil
}

func (b *fakeBackend) Posture(context.Context) PostureReport {
	b.record("Posture")
	return PostureReport{Reporting: true, Attrs: []PostureAttr{{Name: "node:os", Value: "linux", CollectedAt: time.Unix(1, 0).UTC()}}}
}

func (b *fakeBackend) Resolve(_ context.Context, name string) (netip.Addr, error) {
	b.record("Resolve " + name)
	if b.resolveErr != nil {
		return netip.Addr{}, b.resolveErr
	}
	if a, ok := b.addrs[name]; ok {
		return a, nil
	}
	return netip.Addr{}, fmt.Errorf("no such node %q", name)
}

func (b *fakeBackend) Dial(_ context.Context, network, hostport string) (net.Conn, error) {
	b.record("Dial")
	if !b.quiet {
		b.mu.Lock()
		b.dials = append(b.dials, network+" "+hostport)
		b.mu.Unlock()
	}
	if b.dialErr != nil {
		return nil, b.dialErr
	}
	near, far, err := socketPair()
	if err != nil {
		return nil, err
	}
	select {
	case b.dialed <- far:
	default:
		near.Close()
		far.Close()
		return nil, errors.New("fake backend: too many dials")
	}
	return near, nil
}

// socketPair returns two connected unix stream sockets; unlike net.Pipe
// they can be half-closed.
func socketPair() (*net.UnixConn, *net.UnixConn, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		return nil, nil, err
	}
	syscall.CloseOnExec(fds[0])
	syscall.CloseOnExec(fds[1])
	conns := make([]*net.UnixConn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			for _, c := range conns[:i] {
				c.Close()
			}
			syscall.Close(fds[1])
			return nil, nil, err
		}
		conns[i] = c.(*net.UnixConn)
	}
	return conns[0], conns[1], nil
}

// testServer is a Server serving on a unix socket in a temporary
// directory.
type testServer struct {
	path   string
	client *Client
	cancel context.CancelFunc
	done   chan error
}

// startServer serves b with cfg (Backend filled in) until the test ends.
func startServer(t *testing.T, b Backend, cfg Config) *testServer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "warrend.sock")
	ln, err := Listen(path, Access{})
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, b, cfg, ln, path)
}

func serveOn(t *testing.T, b Backend, cfg Config, ln net.Listener, path string) *testServer {
	t.Helper()
	cfg.Backend = b
	s, err := NewServer(cfg)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{path: path, client: NewClient(path), cancel: cancel, done: make(chan error, 1)}
	go func() { ts.done <- s.Serve(ctx, ln) }() // joined by stop
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop ends the server and waits for Serve to return; it is idempotent.
func (ts *testServer) stop(t *testing.T) {
	t.Helper()
	ts.client.Close()
	ts.cancel()
	if err, ok := <-ts.done; ok {
		close(ts.done)
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	}
}

// Access answers a request call with a step-up URL first, then a pending
// request; a call of op "fail" fails.
func (b *fakeBackend) Access(_ context.Context, call AccessCall, onAuthURL func(string)) (AccessReply, error) {
	b.record("Access " + call.Op)
	switch call.Op {
	case "fail":
		return AccessReply{}, errors.New("not connected to the coordinator")
	case "request":
		onAuthURL("https://coord.example/login/abc")
		return AccessReply{Requests: []wire.AccessRequest{{ID: "ar-1", Dst: call.Dst, Duration: call.For, Reason: call.Reason, State: wire.AccessPending}}}, nil
	}
	return AccessReply{Code: wire.AccessForbidden, Message: "no"}, nil
}

func (b *fakeBackend) WhoIs(_ context.Context, addr string) (WhoIs, error) {
	b.record("whois")
	if addr == "" {
		return WhoIs{}, fmt.Errorf("%w: addr is required", ErrBadRequest)
	}
	w, ok := b.whois[addr]
	if !ok {
		return WhoIs{}, fmt.Errorf("%w: %s", ErrNotFound, addr)
	}
	return w, nil
}
