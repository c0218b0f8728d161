package controlclient

import (
	"context"
	"errors"
	"fmt"

	"github.com/warrenmesh/warren/internal/wire"
)

// Just-in-time access calls (see wire.AccessCall): Call sends one over the
// live channel and waits for its replies, which the session's reader
// hands over by ID. At most wire.MaxAccessCalls are in flight at once,
// as the coordinator allows; more wait for a slot.

// ErrChannelLost is returned by Call when the control channel closed
// before the final reply came: the call may or may not have taken effect
// (list the requests to see).
var ErrChannelLost = errors.New("controlclient: the control channel closed before the coordinator answered; check with warren access list")

// calls is the client's table of access calls in flight.
type calls struct {
	next    uint64
	pending map[uint64]chan *wire.AccessReply
}

// Call sends call (its ID is set here) over the live control channel and
// returns the coordinator's final reply. An intermediate reply carrying
// an AuthURL (a step-up sign-in the user must complete) is passed to
// onAuthURL, if set, from Call's goroutine; the final reply follows once
// the user signed in. It fails with ErrNotConnected when no channel is
// up, ErrChannelLost when the channel closes meanwhile, or ctx's error.
func (c *Client) Call(ctx context.Context, call wire.AccessCall, onAuthURL func(url string)) (*wire.AccessReply, error) {
	select {
	case c.callSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-c.callSlots }()
	c.mu.Lock()
	conn, lost := c.conn, c.lost
	if conn == nil {
		c.mu.Unlock()
		return nil, ErrNotConnected
	}
	c.calls.next++
	call.ID = c.calls.next
	ch := make(chan *wire.AccessReply, 2) // the AuthURL reply, then the final one
	if c.calls.pending == nil {
		c.calls.pending = map[uint64]chan *wire.AccessReply{}
	}
	c.calls.pending[call.ID] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.calls.pending, call.ID)
		c.mu.Unlock()
	}()
	if err := wire.WriteMessage(conn, &call); err != nil {
		return nil, fmt.Errorf("send access call: %w", err)
	}
	for {
		select {
		case r := <-ch:
			if r.AuthURL != "" {
				if onAuthURL != nil {
					onAuthURL(r.AuthURL)
				}
				continue
			}
			return r, nil
		case <-lost:
			return nil, ErrChannelLost
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// gotReply hands reply r to the call waiting for it (none: a call that
// gave up; dropped).
func (c *Client) gotReply(r *wire.AccessReply) {
	c.mu.Lock()
	ch := c.calls.pending[r.ID]
	c.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case ch <- r:
	default: // more replies than a call gets: the coordinator misbehaves
		c.log.Warn("unexpected access reply", "id", r.ID)
	}
}
