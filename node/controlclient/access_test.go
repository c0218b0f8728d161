package controlclient

import (
	"context"
	"errors"
	"testing"

	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/wire"
)

// TestCall: access calls travel over the live channel and are matched to
// their replies by ID, out of order; the AuthURL of a step-up reaches the
// caller before the final reply; a channel that drops fails the calls in
// flight, and a client without a channel refuses at once.
func TestCall(t *testing.T) {
	t.Parallel()
	f := newCoord(t, 16)
	c := startClient(t, f, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	conn := f.accept()
	register(t, conn)
	poll.UntilTrue(t, wait, "connected", c.Connected)

	type result struct {
		r    *wire.AccessReply
		urls []string
		err  error
	}
	call := func(op string) chan result {
		out := make(chan result, 1)
		go func() {
			var res result
			res.r, res.err = c.Call(ctx, wire.AccessCall{Op: op, Dst: "tag:db:5432"}, func(u string) { res.urls = append(res.urls, u) })
			out <- res
		}()
		return out
	}
	req := call(wire.AccessOpRequest)
	first := read[*wire.AccessCall](t, conn)
	list := call(wire.AccessOpList)
	second := read[*wire.AccessCall](t, conn)
	if first.ID == second.ID || first.Op != wire.AccessOpRequest || second.Op != wire.AccessOpList {
		t.Fatalf("calls %+v and %+v", first, second)
	}
	// The list is answered first; the request goes through a sign-in.
	write(t, conn, &wire.AccessReply{ID: second.ID, Requests: []wire.AccessRequest{{ID: "ar-1"}}})
	if res := <-list; res.err != nil || len(res.r.Requests) != 1 || res.r.Requests[0].ID != "ar-1" || res.urls != nil {
		t.Fatalf("list: %+v", res)
	}
	write(t, conn, &wire.AccessReply{ID: first.ID, Code: wire.AccessMFARequired, AuthURL: "https://coord.test/login/x"})
	write(t, conn, &wire.AccessReply{ID: first.ID, Requests: []wire.AccessRequest{{ID: "ar-2", State: wire.AccessPending}}})
	res := <-req
	if res.err != nil || res.r.Code != "" || res.r.Requests[0].ID != "ar-2" || len(res.urls) != 1 || res.urls[0] != "https://coord.test/login/x" {
		t.Fatalf("request: %+v", res)
	}

	// A call in flight when the channel drops fails.
	lost := call(wire.AccessOpList)
	read[*wire.AccessCall](t, conn)
	conn.Close()
	if res := <-lost; !errors.Is(res.err, ErrChannelLost) {
		t.Fatalf("call on a lost channel: %+v", res)
	}
	poll.UntilTrue(t, wait, "disconnected", func() bool { return !c.Connected() })
	if _, err := c.Call(ctx, wire.AccessCall{Op: wire.AccessOpList}, nil); !errors.Is(err, ErrNotConnected) && !errors.Is(err, ErrChannelLost) {
		t.Fatalf("call without a channel: %v", err)
	}
	f.accept() // the client redials; leave it waiting
}
