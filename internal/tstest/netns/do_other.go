//go:build !linux

package netns

import "errors"

// supported: network namespaces are Linux's; here Skip skips every test.
const supported = false

// Do fails: there are no network namespaces to enter here.
func (n *Namespace) Do(fn func() error) error {
	return errors.New("netns: network namespaces need Linux")
}
