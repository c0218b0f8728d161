package testmesh

import (
	"context"
	"fmt"
	"net/http"

	"github.com/warrenmesh/warren/internal/wire"
)

// SSHCall sends an SSH call from the node, as its SSH server does, and
// returns the coordinator's final reply. When the coordinator sends a
// sign-in URL first (a check rule), signIn signs a user in there (nil: a
// sign-in URL fails the call); the URLs sent are returned too.
func (n *Node) SSHCall(call wire.SSHCall, signIn SignIn) (*wire.SSHReply, []string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*loginWait)
	defer cancel()
	var urls []string
	var signErr error
	r, err := n.Client.SSHCall(ctx, call, func(u string) {
		urls = append(urls, u)
		if signIn == nil {
			signErr = fmt.Errorf("testmesh: %s: unexpected sign-in URL %s", n.Name, u)
			cancel()
			return
		}
		if status, page := signIn(u); status != http.StatusOK {
			signErr = fmt.Errorf("testmesh: %s: check sign-in ended with %d: %s", n.Name, status, page)
		}
	})
	if signErr != nil {
		return nil, urls, signErr
	}
	return r, urls, err
}
