package controlclient

import (
	"context"
	"errors"

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

func (c *Client) Call(ctx context.Context, call wire.AccessCall, onAuthURL func(url string)) (*wire.AccessReply, error) {
	return roundTrip(ctx, c, &c.calls, func(id uint64) wire.Message { call.ID = id; return &call },
		func(r *wire.AccessReply) (string, bool) { return r.AuthURL, r.AuthURL != "" }, onAuthURL)
}
