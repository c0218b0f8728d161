package controlclient

import (
	"context"
	"fmt"

	"github.com/warrenmesh/warren/internal/wire"
)

// callTable is the client's table of one kind of call in flight (access
// calls, SSH calls), whose replies are R: a token in slots for each call,
// and the channel each waits on for its replies, by ID. next and pending
// are guarded by Client.mu.
type callTable[R any] struct {
	kind    string // "access", "ssh": for errors and logs
	slots   chan struct{}
	next    uint64
	pending map[uint64]chan R
}

func newCallTable[R any](kind string, max int) callTable[R] {
	return callTable[R]{kind: kind, slots: make(chan struct{}, max), pending: map[uint64]chan R{}}
}

// roundTrip waits for a slot in t, sends the message build makes with the
// call's ID over the live channel, and returns the final reply. A reply
// for which signIn returns a URL is not final: the URL goes to onAuthURL,
// if set, and the final reply follows. It fails with ErrNotConnected when
// no channel is up, ErrChannelLost when the channel closes meanwhile, or
// ctx's error.
func roundTrip[R any](ctx context.Context, c *Client, t *callTable[R], build func(id uint64) wire.Message,
	signIn func(R) (url string, interim bool), onAuthURL func(url string)) (R, error) {
	var none R
	select {
	case t.slots <- struct{}{}:
	case <-ctx.Done():
		return none, ctx.Err()
	}
	defer func() { <-t.slots }()
	c.mu.Lock()
	conn, lost := c.conn, c.lost
	if conn == nil {
		c.mu.Unlock()
		return none, ErrNotConnected
	}
	t.next++
	id := t.next
	ch := make(chan R, 2) // the sign-in reply, then the final one
	t.pending[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(t.pending, id)
		c.mu.Unlock()
	}()
	if err := wire.WriteMessage(conn, build(id)); err != nil {
		return none, fmt.Errorf("send %s call: %w", t.kind, err)
	}
	for {
		select {
		case r := <-ch:
			if url, interim := signIn(r); interim {
				if onAuthURL != nil && url != "" {
					onAuthURL(url)
				}
				continue
			}
			return r, nil
		case <-lost:
			return none, ErrChannelLost
		case <-ctx.Done():
			return none, ctx.Err()
		}
	}
}

// deliver hands reply r to the call id of t waiting for it (none: a call
// that gave up; dropped).
func deliver[R any](c *Client, t *callTable[R], id uint64, r R) {
	c.mu.Lock()
	ch := t.pending[id]
	c.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case ch <- r:
	default: // more replies than a call gets: the coordinator misbehaves
		c.log.Warn("unexpected reply", "kind", t.kind, "id", id)
	}
}
