package controlclient

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/wire"
)

// TestSetEndpointsNeverBlocks: with the channel stalled (the coordinator
// reads nothing and the pipe's buffer is full), SetEndpoints still
// returns at once, every time; when the coordinator reads again, the
// updates collapse and the last one it gets is the latest recorded.
func TestSetEndpointsNeverBlocks(t *testing.T) {
	t.Parallel()
	f := newCoord(t, 1)
	c := startClient(t, f, Config{})
	conn := f.accept()
	register(t, conn)
	poll.UntilTrue(t, wait, "connected", c.Connected)

	const calls = 200
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range calls {
			c.SetEndpoints(eps(i), i)
		}
	}()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatalf("SetEndpoints blocked on a stalled control channel")
	}
	var got []*wire.UpdateRequest
	for {
		u := read[*wire.UpdateRequest](t, conn)
		got = append(got, u)
		if u.HomeRelay == calls-1 {
			break
		}
	}
	last := got[len(got)-1]
	if !slices.Equal(last.Endpoints, eps(calls-1)) {
		t.Errorf("last update %v, want the latest %v", last.Endpoints, eps(calls-1))
	}
	// At most what the pipe buffered, the write it blocked, and the latest.
	if len(got) > 3 {
		t.Errorf("%d updates for %d calls on a stalled channel; want them collapsed to the latest", len(got), calls)
	}
	t.Logf("%d calls on a stalled channel became %d updates", calls, len(got))
}

// TestEndpointsNotLost: endpoints recorded at any moment reach the
// coordinator: while disconnected (with the next map request), between
// the map request and the session being up (right after it), and while
// connected.
func TestEndpointsNotLost(t *testing.T) {
	t.Parallel()
	f := newCoord(t, 16)
	c := startClient(t, f, Config{})
	c.SetEndpoints(eps(1), 1) // before the first connect
	conn := f.accept()
	read[*wire.RegisterRequest](t, conn)
	write(t, conn, &wire.RegisterResponse{Authorized: true, Self: &wire.Node{ID: 1, Name: "node"}})
	mr := read[*wire.MapRequest](t, conn)
	if !slices.Equal(mr.Endpoints, eps(1)) || mr.HomeRelay != 1 {
		t.Fatalf("map request has %v/%d, want %v/1", mr.Endpoints, mr.HomeRelay, eps(1))
	}
	// The client has sent its map request and may not have marked the
	// session up yet: a change now must still be sent.
	c.SetEndpoints(eps(2), 2)
	if u := read[*wire.UpdateRequest](t, conn); !slices.Equal(u.Endpoints, eps(2)) || u.HomeRelay != 2 {
		t.Fatalf("update %v/%d, want %v/2", u.Endpoints, u.HomeRelay, eps(2))
	}
	write(t, conn, &wire.MapResponse{Version: 1, Full: true, Self: &wire.Node{ID: 1, Name: "node"}})
	poll.UntilTrue(t, wait, "first netmap", func() bool { return c.Netmap() != nil })

	// The channel drops; a change while disconnected comes with the next
	// map request, and no stale update follows it.
	conn.Close()
	poll.UntilTrue(t, wait, "disconnected", func() bool { return !c.Connected() })
	c.SetEndpoints(eps(3), 3)
	conn = f.accept()
	if mr := register(t, conn); !slices.Equal(mr.Endpoints, eps(3)) || mr.HomeRelay != 3 {
		t.Fatalf("map request after reconnect has %v/%d, want %v/3", mr.Endpoints, mr.HomeRelay, eps(3))
	}
	c.SetEndpoints(eps(4), 4)
	if u := read[*wire.UpdateRequest](t, conn); !slices.Equal(u.Endpoints, eps(4)) {
		t.Fatalf("update after reconnect %v, want %v (no stale one before it)", u.Endpoints, eps(4))
	}
}

// TestReconnectWithBackoff: failed dials are retried until one works,
// and a lost channel is redialled, the netmap kept meanwhile.
func TestReconnectWithBackoff(t *testing.T) {
	t.Parallel()
	f := newCoord(t, 16)
	f.failDials = 3
	c := startClient(t, f, Config{})
	conn := f.accept()
	register(t, conn)
	poll.UntilTrue(t, wait, "first netmap", func() bool { return c.Netmap() != nil })
	if n := f.dialCount(); n != 4 {
		t.Errorf("connected on dial %d, want 4 (after 3 failures)", n)
	}
	if c.Sessions() != 1 {
		t.Errorf("sessions = %d, want 1", c.Sessions())
	}
	conn.Close()
	conn = f.accept()
	if c.Netmap() == nil {
		t.Error("netmap dropped while reconnecting")
	}
	register(t, conn)
	poll.UntilTrue(t, wait, "second session", func() bool { return c.Sessions() == 2 })
}

// TestLogin: a registration without a key gets a sign-in URL; the client
// hands it to OnLoginURL, waits with a follow-up naming it, and joins
// when the coordinator authorizes it.
func TestLogin(t *testing.T) {
	t.Parallel()
	f := newCoord(t, 16)
	urls := make(chan string, 1)
	maps := make(chan *Netmap, 1)
	startClient(t, f, Config{OnLoginURL: func(u string) { urls <- u }, OnNetmap: func(nm *Netmap) { maps <- nm }})
	conn := f.accept()
	if rr := read[*wire.RegisterRequest](t, conn); rr.AuthKey != "" || rr.Followup != "" {
		t.Fatalf("first registration %+v, want no key and no follow-up", rr)
	}
	const url = "https://coordinator.test/login/abc"
	write(t, conn, &wire.RegisterResponse{AuthURL: url})
	select {
	case u := <-urls:
		if u != url {
			t.Fatalf("OnLoginURL got %q, want %q", u, url)
		}
	case <-time.After(wait):
		t.Fatal("OnLoginURL never called")
	}
	if rr := read[*wire.RegisterRequest](t, conn); rr.Followup != url {
		t.Fatalf("follow-up names %q, want %q", rr.Followup, url)
	}
	self := &wire.Node{ID: 7, Name: "laptop"}
	write(t, conn, &wire.RegisterResponse{Authorized: true, Self: self})
	read[*wire.MapRequest](t, conn)
	write(t, conn, &wire.MapResponse{Version: 1, Full: true, Self: self})
	select {
	case nm := <-maps:
		if nm.Self.Name != "laptop" {
			t.Fatalf("netmap self %+v", nm.Self)
		}
	case <-time.After(wait):
		t.Fatal("no netmap after the sign-in")
	}
}

// TestIdleWatchdog: the client answers keep-alives, and closes a channel
// on which nothing arrives for IdleTimeout, then reconnects.
func TestIdleWatchdog(t *testing.T) {
	t.Parallel()
	f := newCoord(t, 16)
	// Long enough that a stall of a loaded machine between two reads of
	// the registration does not trip it.
	c := startClient(t, f, Config{IdleTimeout: time.Second})
	conn := f.accept()
	register(t, conn)
	write(t, conn, &wire.KeepAlive{})
	if m, err := wire.ReadMessage(conn, wire.MaxNodeMessage); err != nil {
		t.Fatalf("no answer to a keep-alive: %v", err)
	} else if _, ok := m.(*wire.KeepAlive); !ok {
		t.Fatalf("answer to a keep-alive is %T", m)
	}
	// Now silence: the client gives the channel up and dials again.
	if _, err := wire.ReadMessage(conn, wire.MaxNodeMessage); err == nil {
		t.Fatal("the client sent something instead of closing the silent channel")
	}
	register(t, f.accept())
	poll.UntilTrue(t, wait, "second session", func() bool { return c.Sessions() == 2 })
}

// TestRefusals: a coordinator error that retrying cannot fix ends Run
// with a PermanentError; a transient one (busy, internal) is retried.
func TestRefusals(t *testing.T) {
	t.Parallel()
	f := newCoord(t, 16)
	cfg := Config{URL: "http://coordinator.test", ControlKey: f.key.Public(), Machine: key.NewMachine(),
		NodeKey: key.NewNode().Public(), DiscoKey: key.NewDisco().Public(), Hostname: "node",
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.dial = f.dial
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(ctx) }()

	for _, code := range []wire.ErrorCode{wire.CodeBusy, wire.CodeInternal} {
		conn := f.accept()
		read[*wire.RegisterRequest](t, conn)
		write(t, conn, &wire.Error{Code: code, Message: "try later"})
	}
	conn := f.accept() // retried after both transient errors
	read[*wire.RegisterRequest](t, conn)
	write(t, conn, &wire.Error{Code: wire.CodeNodeRemoved, Message: "deleted"})
	select {
	case err := <-runErr:
		var perm *PermanentError
		if !errors.As(err, &perm) || perm.Err.Code != wire.CodeNodeRemoved {
			t.Fatalf("Run ended with %v, want the node_removed refusal", err)
		}
	case <-time.After(wait):
		t.Fatal("Run kept going after a permanent refusal")
	}
	if n := f.dialCount(); n != 3 {
		t.Errorf("%d dials, want 3", n)
	}
}
