package controlclient

import (
	"context"
	"fmt"

	"github.com/warrenmesh/warren/internal/wire"
)

// SSH calls (see wire.SSHCall): the node's SSH server asks the
// coordinator to check a sign-in, and tells it of sessions started, ended
// and refused. SSHCall works like Call, with its own bound of
// wire.MaxSSHCalls in flight, so SSH logins and access requests never
// wait for each other.

// sshCalls is the client's table of SSH calls in flight.
type sshCalls struct {
	next    uint64
	pending map[uint64]chan *wire.SSHReply
}

// SSHCall sends call (its ID is set here) over the live control channel
// and returns the coordinator's final reply. A reply with Code
// wire.SSHAuthRequired (a sign-in the SSH user must complete) passes its
// AuthURL to onAuthURL, if set, from SSHCall's goroutine; the final reply
// follows once the user signed in (or failed to). It fails with
// ErrNotConnected when no channel is up, ErrChannelLost when the channel
// closes meanwhile, or ctx's error.
func (c *Client) SSHCall(ctx context.Context, call wire.SSHCall, onAuthURL func(url string)) (*wire.SSHReply, error) {
	select {
	case c.sshSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-c.sshSlots }()
	c.mu.Lock()
	conn, lost := c.conn, c.lost
	if conn == nil {
		c.mu.Unlock()
		return nil, ErrNotConnected
	}
	c.ssh.next++
	call.ID = c.ssh.next
	ch := make(chan *wire.SSHReply, 2) // the AuthURL reply, then the final one
	if c.ssh.pending == nil {
		c.ssh.pending = map[uint64]chan *wire.SSHReply{}
	}
	c.ssh.pending[call.ID] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.ssh.pending, call.ID)
		c.mu.Unlock()
	}()
	if err := wire.WriteMessage(conn, &call); err != nil {
		return nil, fmt.Errorf("send ssh call: %w", err)
	}
	for {
		select {
		case r := <-ch:
			if r.Code == wire.SSHAuthRequired {
				if onAuthURL != nil && r.AuthURL != "" {
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

// gotSSHReply hands reply r to the SSH call waiting for it (none: a call
// that gave up; dropped).
func (c *Client) gotSSHReply(r *wire.SSHReply) {
	c.mu.Lock()
	ch := c.ssh.pending[r.ID]
	c.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case ch <- r:
	default: // more replies than a call gets: the coordinator misbehaves
		c.log.Warn("unexpected ssh reply", "id", r.ID)
	}
}
