package daemon

import (
	"context"
	"errors"

	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/controlclient"
	"github.com/warrenmesh/warren/node/localapi"
)

// Access implements localapi.Backend: it passes the call to the
// coordinator over the running session's control channel, as this node.
func (d *Daemon) Access(ctx context.Context, call localapi.AccessCall, onAuthURL func(string)) (localapi.AccessReply, error) {
	s := d.current()
	if s == nil || s.client == nil {
		return localapi.AccessReply{}, errNotRunning
	}
	r, err := s.client.Call(ctx, wire.AccessCall{Op: call.Op, Dst: call.Dst, For: call.For, Reason: call.Reason,
		Request: call.Request, Pending: call.Pending}, onAuthURL)
	if errors.Is(err, controlclient.ErrNotConnected) {
		return localapi.AccessReply{}, errors.New("not connected to the coordinator right now: try again when warren status shows it connected")
	}
	if err != nil {
		return localapi.AccessReply{}, err
	}
	return localapi.AccessReply{Code: r.Code, Message: r.Message, Requests: r.Requests}, nil
}
