//go:build !windows

package localapi

import (
	"slices"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// TestAccess: an access call reaches the backend with its fields, the
// step-up sign-in URL streams to the caller before the final reply, a
// refusal is a reply with a code, and a backend error is an error.
func TestAccess(t *testing.T) {
	b := newFakeBackend()
	ts := startServer(t, b, Config{})
	var urls []string
	rep, err := ts.client.Access(testCtx(t), AccessCall{Op: wire.AccessOpRequest, Dst: "tag:db:5432", For: 2 * time.Hour, Reason: "INC-4211"},
		func(u string) { urls = append(urls, u) })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(urls, []string{"https://coord.example/login/abc"}) {
		t.Errorf("sign-in URLs %q", urls)
	}
	if len(rep.Requests) != 1 || rep.Requests[0].Dst != "tag:db:5432" || rep.Requests[0].Duration != 2*time.Hour || rep.Requests[0].Reason != "INC-4211" {
		t.Errorf("reply %+v", rep)
	}
	rep, err = ts.client.Access(testCtx(t), AccessCall{Op: wire.AccessOpApprove, Request: "ar-1"}, nil)
	if err != nil || rep.Code != wire.AccessForbidden || rep.Message != "no" {
		t.Errorf("refusal: %+v, %v", rep, err)
	}
	if _, err := ts.client.Access(testCtx(t), AccessCall{Op: "fail"}, nil); err == nil || err.Error() != "not connected to the coordinator" {
		t.Errorf("backend error: %v", err)
	}
	if _, err := ts.client.Access(testCtx(t), AccessCall{}, nil); err == nil {
		t.Error("a call without an op was accepted")
	}
}
