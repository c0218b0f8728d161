package sshserver

import (
	"context"
	"net"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/warrenmesh/warren/internal/recording"
	"github.com/warrenmesh/warren/internal/tstest/sshtest"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/controlclient"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds every wait in these tests; it only ends a test that would
// hang.
const wait = 30 * time.Second

// Peers of the test netmap. The SSH client connects from 127.0.0.1, so
// the peer with that address is the caller.
var (
	laptop  = wire.Node{ID: 2, Name: "laptop", User: "alice@example.com", Addresses: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	recNode = wire.Node{ID: 3, Name: "rec", Tags: []string{"tag:recorder"}, Addresses: []netip.Prefix{netip.MustParsePrefix("100.64.0.3/32")}}
)

// netmap returns a netmap with the laptop and the recorder as peers and
// rules as the SSH policy.
func netmap(rules ...wire.SSHRule) *controlclient.Netmap {
	return &controlclient.Netmap{Self: wire.Node{ID: 1, Name: "server"}, Peers: []wire.Node{laptop, recNode},
		SSH: &wire.SSHPolicy{Rules: rules}}
}

// control is a small real implementation of the coordinator's side of
// SSH calls: it records every call, answers checks as check says, and
// starts with the coordinator as recorder with an upload URL on rec.
type control struct {
	mu    sync.Mutex
	calls []wire.SSHCall
	got   chan wire.SSHCall // every call, as it comes (buffered)
	// check answers a check call: it may call onAuthURL first.
	check func(ctx context.Context, onAuthURL func(string)) (*wire.SSHReply, error)
	// recordURL is the coordinator's upload URL ("": none).
	recordURL string
	// startGate, when set, holds start calls until it is closed.
	startGate chan struct{}
}

func newControl() *control { return &control{got: make(chan wire.SSHCall, 100)} }

func (c *control) SSHCall(ctx context.Context, call wire.SSHCall, onAuthURL func(string)) (*wire.SSHReply, error) {
	c.mu.Lock()
	c.calls = append(c.calls, call)
	check, url, gate := c.check, c.recordURL, c.startGate
	c.mu.Unlock()
	select {
	case c.got <- call:
	default:
	}
	switch {
	case call.Op == wire.SSHOpCheck && check != nil:
		return check(ctx, onAuthURL)
	case call.Op == wire.SSHOpStart && call.Recorder == wire.RecordToCoordinator:
		if url == "" {
			return &wire.SSHReply{Code: wire.SSHFailed, Message: "no recordings here"}, nil
		}
		return &wire.SSHReply{RecordURL: url, RecordToken: "token-" + call.Session}, nil
	case call.Op == wire.SSHOpStart && gate != nil:
		<-gate
	}
	return &wire.SSHReply{}, nil
}

// ops returns the operations of the calls so far, in order.
func (c *control) ops() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ops []string
	for _, call := range c.calls {
		ops = append(ops, call.Op)
	}
	return ops
}

// next returns the next call with op (skipping others).
func (c *control) next(t *testing.T, op string) wire.SSHCall {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case call := <-c.got:
			if call.Op == op {
				return call
			}
		case <-timeout:
			t.Fatalf("no %s call within %v", op, wait)
		}
	}
}

// harness is a server on a loopback listener with a test user.
type harness struct {
	srv  *Server
	ctl  *control
	user string
	port int
}

func newHarness(t *testing.T, nm *controlclient.Netmap, tweak func(*Config)) *harness {
	t.Helper()
	return newHarnessPrep(t, nm, tweak, nil)
}

// newHarnessPrep is newHarness with prep run on the server before it
// serves.
func newHarnessPrep(t *testing.T, nm *controlclient.Netmap, tweak func(*Config), prep func(*Server)) *harness {
	t.Helper()
	u := sshtest.User(t, "ssh")
	key, err := LoadHostKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctl := newControl()
	cfg := Config{HostKey: key, Control: ctl, CallTimeout: 5 * time.Second}
	if tweak != nil {
		tweak(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if prep != nil {
		prep(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		<-served
	})
	srv.SetNetmap(nm)
	return &harness{srv: srv, ctl: ctl, user: u.Username, port: ln.Addr().(*net.TCPAddr).Port}
}

// client returns the real ssh client logging in as login.
func (h *harness) client(login string) sshtest.Client {
	return sshtest.Client{User: login, Host: "127.0.0.1", Port: h.port}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// recorderServer runs a real recording handler on loopback, accepting
// what the uploader claims, and returns its directory and URL.
func recorderServer(t *testing.T) (*recording.Dir, *httptest.Server) {
	t.Helper()
	d, err := recording.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(recording.Handler(d, recording.MetaFromRequest))
	ts.EnableHTTP2 = false
	t.Cleanup(ts.Close)
	return d, ts
}

// accept is an accept rule for the laptop as any non-root user.
func accept(mod func(*wire.SSHRule)) wire.SSHRule {
	r := wire.SSHRule{Rule: "ssh[0]", Sources: []wire.NodeID{laptop.ID}, Users: []string{"autogroup:nonroot"}, Action: wire.SSHAccept}
	if mod != nil {
		mod(&r)
	}
	return r
}
