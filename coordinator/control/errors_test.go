package control

import (
	"errors"
	"fmt"
	"testing"

	"github.com/warrenmesh/warren/coordinator/auth"
	"github.com/warrenmesh/warren/coordinator/login"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/internal/wire"
)

// What a node is told when its registration fails decides whether it
// retries: a full sign-in table is "busy" (retry later), never the
// coordinator's own failure, and refusals are final.
func TestErrorFor(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want wire.ErrorCode
	}{
		{fmt.Errorf("start login: %w", login.ErrTooManyFromSource), wire.CodeBusy},
		{fmt.Errorf("start login: %w", login.ErrTooManyLogins), wire.CodeBusy},
		{fmt.Errorf("start login: %w", login.ErrProviderUnavailable), wire.CodeBusy},
		{fmt.Errorf("%w: user gone", registry.ErrTagNotOwned), wire.CodeUnauthorized},
		{auth.ErrKeyRevoked, wire.CodeUnauthorized},
		{fmt.Errorf("%w: %w", registry.ErrLoginFailed, login.ErrCodeReused), wire.CodeUnauthorized},
		{registry.ErrBadRequest, wire.CodeBadRequest},
		{errors.New("disk on fire"), wire.CodeInternal},
	} {
		if got := errorFor(tc.err); got.Code != tc.want {
			t.Errorf("errorFor(%v) = %s, want %s", tc.err, got.Code, tc.want)
		}
	}
	if msg := errorFor(errors.New("secret path /var/x")).Message; msg != "the coordinator failed; try again later" {
		t.Errorf("an internal error leaks its text to the node: %q", msg)
	}
}
