package testmesh

import (
	"context"

	"github.com/warrenmesh/warren/internal/wire"
)

// SSHCall sends an SSH call from the node, as its SSH server does, and
// returns the coordinator's final reply. When the coordinator sends a
// sign-in URL first (a check rule), signIn signs a user in there (nil: a
// sign-in URL fails the call); the URLs sent are returned too.
func (n *Node) SSHCall(call wire.SSHCall, signIn SignIn) (*wire.SSHReply, []string, error) {
	return callSigningIn(n, "check", signIn, func(ctx context.Context, onURL func(string)) (*wire.SSHReply, error) {
		return n.Client.SSHCall(ctx, call, onURL)
	})
}
