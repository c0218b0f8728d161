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
	return callSigningIn(n, "step-up", signIn, func(ctx context.Context, onURL func(string)) (*wire.AccessReply, error) {
		return n.Client.Call(ctx, call, onURL)
	})
}

// callSigningIn runs one control call from n whose coordinator may first
// send a sign-in URL (what names the sign-in in errors): signIn signs in
// there (nil: a URL fails the call). It returns the final reply and the
// URLs sent.
func callSigningIn[R any](n *Node, what string, signIn SignIn, call func(context.Context, func(string)) (R, error)) (R, []string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*loginWait)
	defer cancel()
	var urls []string
	var signErr error
	r, err := call(ctx, func(u string) {
		urls = append(urls, u)
		if signIn == nil {
			signErr = fmt.Errorf("testmesh: %s: unexpected sign-in URL %s", n.Name, u)
			cancel()
			return
		}
		if status, page := signIn(u); status != http.StatusOK {
			signErr = fmt.Errorf("testmesh: %s: %s sign-in ended with %d: %s", n.Name, what, status, page)
		}
	})
	if signErr != nil {
		var none R
		return none, urls, signErr
	}
	return r, urls, err
}
