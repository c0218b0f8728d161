package control

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/access"
	"github.com/warrenmesh/warren/internal/wire"
)

// nextAccess returns the node's next access reply, skipping netmap
// traffic.
func (n *node) nextAccess() *wire.AccessReply {
	n.t.Helper()
	for {
		switch m := n.recv().(type) {
		case *wire.AccessReply:
			return m
		case *wire.KeepAlive, *wire.MapResponse:
		default:
			n.t.Fatalf("want an access reply, got %T", m)
		}
	}
}

// TestAccessCallsWithoutService: a coordinator without the access
// service answers every call, and a malformed one, with a reply rather
// than by failing the channel.
func TestAccessCallsWithoutService(t *testing.T) {
	h := newHarness(t, Config{})
	n := h.join("192.0.2.1:41641")
	n.send(&wire.AccessCall{ID: 7, Op: wire.AccessOpList})
	if r := n.nextAccess(); r.ID != 7 || r.Code != wire.AccessFailed || !strings.Contains(r.Message, "not enabled") {
		t.Fatalf("reply %+v, want failed: not enabled", r)
	}
	// The channel still carries the node's messages.
	n.send(&wire.AccessCall{ID: 8, Op: wire.AccessOpList})
	if r := n.nextAccess(); r.ID != 8 {
		t.Fatalf("reply %+v to call 8", r)
	}
}

// TestAccessCallMalformed: a call of an unknown op or missing what its op
// needs is answered AccessInvalid; the channel stays up.
func TestAccessCallMalformed(t *testing.T) {
	h := newHarness(t, Config{})
	h.srv.access = &heldAccess{release: make(chan struct{})}
	close(h.srv.access.(*heldAccess).release)
	n := h.join("192.0.2.1:41641")
	for i, c := range []wire.AccessCall{
		{Op: "delete-everything"},
		{Op: wire.AccessOpRequest, For: time.Hour},
		{Op: wire.AccessOpRequest, Dst: "tag:db:5432"},
		{Op: wire.AccessOpRequest, Dst: "tag:db:5432", For: -time.Hour},
		{Op: wire.AccessOpApprove},
		{Op: wire.AccessOpDeny, Request: strings.Repeat("x", 100)},
		{Op: wire.AccessOpRequest, Dst: "tag:db:5432", For: time.Hour, Reason: strings.Repeat("r", 2000)},
	} {
		c.ID = uint64(100 + i)
		n.send(&c)
		if r := n.nextAccess(); r.ID != c.ID || r.Code != wire.AccessInvalid || r.Message == "" {
			t.Errorf("call %+v: reply %+v, want invalid", c, r)
		}
	}
	n.send(&wire.AccessCall{ID: 1, Op: wire.AccessOpList})
	if r := n.nextAccess(); r.ID != 1 || r.Code != "" {
		t.Fatalf("reply %+v to a good call after malformed ones", r)
	}
}

// TestAccessCallsBounded: at most wire.MaxAccessCalls run at once on a
// channel; one more is answered busy at once, while the reader goes on
// (keep-alives and other messages still flow), and the held calls are
// answered when they end.
func TestAccessCallsBounded(t *testing.T) {
	h := newHarness(t, Config{})
	held := &heldAccess{release: make(chan struct{}), started: make(chan struct{}, wire.MaxAccessCalls)}
	h.srv.access = held
	n := h.join("192.0.2.1:41641")
	for i := range wire.MaxAccessCalls {
		n.send(&wire.AccessCall{ID: uint64(i + 1), Op: wire.AccessOpList})
	}
	for range wire.MaxAccessCalls {
		<-held.started
	}
	n.send(&wire.AccessCall{ID: 99, Op: wire.AccessOpList})
	if r := n.nextAccess(); r.ID != 99 || r.Code != wire.CodeAccessBusy {
		t.Fatalf("reply %+v, want busy for call 99", r)
	}
	close(held.release)
	seen := map[uint64]bool{}
	for range wire.MaxAccessCalls {
		r := n.nextAccess()
		if r.Code != "" || seen[r.ID] || r.ID < 1 || r.ID > wire.MaxAccessCalls {
			t.Fatalf("reply %+v", r)
		}
		seen[r.ID] = true
	}
	// A slot is free again.
	n.send(&wire.AccessCall{ID: 100, Op: wire.AccessOpList})
	if r := n.nextAccess(); r.ID != 100 || r.Code != "" {
		t.Fatalf("reply %+v to call 100", r)
	}
}

// TestAccessCallEndsWithChannel: a call held when the channel closes ends
// with it (the server's Close waits for it; goleak checks).
func TestAccessCallEndsWithChannel(t *testing.T) {
	h := newHarness(t, Config{})
	held := &heldAccess{release: make(chan struct{}), started: make(chan struct{}, 1)}
	h.srv.access = held
	n := h.join("192.0.2.1:41641")
	n.send(&wire.AccessCall{ID: 1, Op: wire.AccessOpList})
	<-held.started
	n.conn.Close()
	h.srv.Close()
}

// heldAccess is an access service whose List holds each call until
// release is closed or the call's context ends; the other operations
// refuse. It stands in for the service where a test needs calls that
// stay in flight.
type heldAccess struct {
	release chan struct{}
	started chan struct{}
}

func (a *heldAccess) List(ctx context.Context, _ access.Caller, _ bool) ([]wire.AccessRequest, error) {
	if a.started != nil {
		a.started <- struct{}{}
	}
	select {
	case <-a.release:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (a *heldAccess) Request(context.Context, access.Caller, string, time.Duration, string) (wire.AccessRequest, error) {
	return wire.AccessRequest{}, &access.Error{Code: wire.AccessNoRule, Message: "no rule"}
}

func (a *heldAccess) Approve(context.Context, access.Caller, string, time.Duration) (wire.AccessRequest, error) {
	return wire.AccessRequest{}, &access.Error{Code: wire.AccessForbidden, Message: "no"}
}

func (a *heldAccess) Deny(context.Context, access.Caller, string, string) (wire.AccessRequest, error) {
	return wire.AccessRequest{}, &access.Error{Code: wire.AccessForbidden, Message: "no"}
}

func (a *heldAccess) Cancel(context.Context, access.Caller, string) (wire.AccessRequest, error) {
	return wire.AccessRequest{}, &access.Error{Code: wire.AccessForbidden, Message: "no"}
}

func (a *heldAccess) Revoke(context.Context, access.Caller, string, string) (wire.AccessRequest, error) {
	return wire.AccessRequest{}, &access.Error{Code: wire.AccessForbidden, Message: "no"}
}
