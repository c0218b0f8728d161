package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/cli"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/localapi"
)

// TestAccessOutput: each reply prints as a person reads it and exits
// with the documented status: 0 success, 3 refused, 1 failed.
func TestAccessOutput(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	active := wire.AccessRequest{ID: "ar-3", Dst: "tag:prod-db:5432", Duration: 2 * time.Hour, Reason: "INC-4211",
		State: wire.AccessActive, Expires: now.Add(90 * time.Minute), User: "ann@example.com", NodeName: "laptop"}
	tests := []struct {
		name string
		sub  string
		json bool
		rep  localapi.AccessReply
		out  []string
		code int // exit status; 0 success
	}{
		{name: "pending", sub: wire.AccessOpRequest, rep: localapi.AccessReply{Requests: []wire.AccessRequest{{ID: "ar-1", State: wire.AccessPending, Dst: "tag:prod-db:5432", Duration: 2 * time.Hour, Reason: "INC-4211"}}},
			out: []string{"ar-1 pending: tag:prod-db:5432 for 2h0m0s (INC-4211)", "warren access list --pending"}},
		{name: "active", sub: wire.AccessOpApprove, rep: localapi.AccessReply{Requests: []wire.AccessRequest{active}},
			out: []string{"ar-3 active", "1h30m0s left"}},
		{name: "list", sub: wire.AccessOpList, rep: localapi.AccessReply{Requests: []wire.AccessRequest{active}},
			out: []string{"ID", "STATE", "ar-3", "ann@example.com", "laptop", "in 1h30m0s", "INC-4211"}},
		{name: "empty list", sub: wire.AccessOpList, out: []string{"No access requests."}},
		{name: "refused", sub: wire.AccessOpApprove, rep: localapi.AccessReply{Code: wire.AccessForbidden, Message: "you may not approve your own request"}, code: exitRefused},
		{name: "no rule", sub: wire.AccessOpRequest, rep: localapi.AccessReply{Code: wire.AccessNoRule, Message: "no access rule lets you request tag:x:1"}, code: exitRefused},
		{name: "failed", sub: wire.AccessOpList, rep: localapi.AccessReply{Code: wire.AccessFailed, Message: "try again"}, code: 1},
		{name: "json refused", sub: wire.AccessOpDeny, json: true, rep: localapi.AccessReply{Code: wire.AccessNotFound, Message: "no such request"},
			out: []string{`"code": "not-found"`}, code: exitRefused},
		{name: "json list", sub: wire.AccessOpList, json: true, out: []string{`"requests": []`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			c := &command{out: &out, json: tc.json}
			var err error
			if tc.sub == wire.AccessOpList && !tc.json && tc.rep.Code == "" {
				err = printAccessList(&out, tc.rep.Requests, now)
			} else if !tc.json && tc.rep.Code == "" {
				for _, r := range tc.rep.Requests {
					out.WriteString(accessLine(r, now) + "\n")
				}
			} else {
				err = c.printAccess(tc.sub, tc.rep)
			}
			code := 0
			if err != nil {
				code = 1
				var ee *cli.ExitError
				if errors.As(err, &ee) {
					code = ee.Code
				}
				if !tc.json && code != 0 && !strings.Contains(err.Error(), tc.rep.Message) {
					t.Errorf("error %q does not carry the coordinator's message", err)
				}
			}
			if code != tc.code {
				t.Errorf("exit status %d, want %d (err %v)", code, tc.code, err)
			}
			for _, s := range tc.out {
				if !strings.Contains(out.String(), s) {
					t.Errorf("output lacks %q:\n%s", s, out.String())
				}
			}
		})
	}
}

// TestAccessUsage: a malformed access command exits 2 before asking
// warrend anything.
func TestAccessUsage(t *testing.T) {
	for _, args := range [][]string{
		{"access"},
		{"access", "frobnicate"},
		{"access", "request", "tag:db:5432"},
		{"access", "request"},
		{"access", "deny", "ar-1"},
		{"access", "approve"},
		{"login"},
	} {
		var out, errOut bytes.Buffer
		err := run(t.Context(), append([]string{"--socket", "/nonexistent/wg-c.sock"}, args...), nil, &out, &errOut)
		var ee *cli.ExitError
		if !errors.As(err, &ee) || ee.Code != 2 {
			t.Errorf("%q: %v, want exit status 2", args, err)
		}
	}
}
