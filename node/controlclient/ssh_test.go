package controlclient

import (
	"context"
	"errors"
	"testing"

	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/wire"
)

// TestSSHCall: SSH calls travel over the live channel and are matched to
// their replies by ID, out of order and apart from access calls; a
// check's AuthURL reaches the caller before the final reply; a channel
// that drops fails the calls in flight, and a client without a channel
// refuses at once.
func TestSSHCall(t *testing.T) {
	t.Parallel()
	f := newCoord(t, 16)
	c := startClient(t, f, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	conn := f.accept()
	register(t, conn)
	poll.UntilTrue(t, wait, "connected", c.Connected)

	type result struct {
		r    *wire.SSHReply
		urls []string
		err  error
	}
	call := func(op string) chan result {
		out := make(chan result, 1)
		go func() {
			var res result
			res.r, res.err = c.SSHCall(ctx, wire.SSHCall{Op: op, Src: 7, LocalUser: "alice"}, func(u string) { res.urls = append(res.urls, u) })
			out <- res
		}()
		return out
	}
	check := call(wire.SSHOpCheck)
	first := read[*wire.SSHCall](t, conn)
	start := call(wire.SSHOpStart)
	second := read[*wire.SSHCall](t, conn)
	if first.ID == second.ID || first.Op != wire.SSHOpCheck || second.Op != wire.SSHOpStart || first.LocalUser != "alice" {
		t.Fatalf("calls %+v and %+v", first, second)
	}
	// An access reply with the same ID does not answer an SSH call.
	write(t, conn, &wire.AccessReply{ID: second.ID})
	write(t, conn, &wire.SSHReply{ID: second.ID, RecordURL: "https://coord.test/rec", RecordToken: "tok"})
	if res := <-start; res.err != nil || res.r.RecordURL != "https://coord.test/rec" || res.urls != nil {
		t.Fatalf("start: %+v", res)
	}
	write(t, conn, &wire.SSHReply{ID: first.ID, Code: wire.SSHAuthRequired, AuthURL: "https://coord.test/login/x"})
	write(t, conn, &wire.SSHReply{ID: first.ID})
	res := <-check
	if res.err != nil || res.r.Code != "" || len(res.urls) != 1 || res.urls[0] != "https://coord.test/login/x" {
		t.Fatalf("check: %+v", res)
	}

	lost := call(wire.SSHOpEnd)
	read[*wire.SSHCall](t, conn)
	conn.Close()
	if res := <-lost; !errors.Is(res.err, ErrChannelLost) {
		t.Fatalf("call on a lost channel: %+v", res)
	}
	poll.UntilTrue(t, wait, "disconnected", func() bool { return !c.Connected() })
	if _, err := c.SSHCall(ctx, wire.SSHCall{Op: wire.SSHOpDeny}, nil); !errors.Is(err, ErrNotConnected) && !errors.Is(err, ErrChannelLost) {
		t.Fatalf("call without a channel: %v", err)
	}
	f.accept() // the client redials; leave it waiting
}
