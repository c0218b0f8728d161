package controlclient

import (
	"context"

	"github.com/warrenmesh/warren/internal/wire"
)

// SSH calls (see wire.SSHCall): the node's SSH server asks the
// coordinator to check a sign-in, and tells it of sessions started, ended
// and refused. SSHCall works like Call, with its own bound of
// wire.MaxSSHCalls in flight, so SSH logins and access requests never
// wait for each other.

// SSHCall sends call (its ID is set here) over the live control channel
// and returns the coordinator's final reply. A reply with Code
// wire.SSHAuthRequired (a sign-in the SSH user must complete) passes its
// AuthURL to onAuthURL, if set, from SSHCall's goroutine; the final reply
// follows once the user signed in (or failed to). It fails with
// ErrNotConnected when no channel is up, ErrChannelLost when the channel
// closes meanwhile, or ctx's error.
func (c *Client) SSHCall(ctx context.Context, call wire.SSHCall, onAuthURL func(url string)) (*wire.SSHReply, error) {
	return roundTrip(ctx, c, &c.ssh, func(id uint64) wire.Message { call.ID = id; return &call },
		func(r *wire.SSHReply) (string, bool) { return r.AuthURL, r.Code == wire.SSHAuthRequired }, onAuthURL)
}
