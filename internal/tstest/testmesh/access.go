package testmesh

import (
	"context"
	"fmt"
	"net/http"

	"github.com/warrenmesh/warren/internal/wire"
)

// Access runs a just-in-time access call from the node, as warren access
// does, and returns the coordinator's final reply. When the coordinator
// sends a step-up sign-in URL first, signIn signs the node's user in
// there (nil: a sign-in URL fails the call); the URLs sent are returned
// too.
func (n *Node) Access(call wire.AccessCall, signIn SignIn) (*wire.AccessReply, []string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*loginWait)
	defer cancel()
	var urls []string
	var signErr error
	r, err := n.Client.Call(ctx, call, func(u string) {
		urls = append(urls, u)
		if signIn == nil {
			signErr = fmt.Errorf("testmesh: %s: unexpected sign-in URL %s", n.Name, u)
			cancel()
			return
		}
		if status, page := signIn(u); status != http.StatusOK {
			signErr = fmt.Errorf("testmesh: %s: step-up sign-in ended with %d: %s", n.Name, status, page)
		}
	})
	if signErr != nil {
		return nil, urls, signErr
	}
	return r, urls, err
}
