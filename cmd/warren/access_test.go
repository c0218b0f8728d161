package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/cli"
	"github.com/warrenmesh/warren/internal/tstest/testmesh"
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

// TestAccessCLI runs warren access against real daemons and a real
// coordinator: ann asks from her laptop, cannot approve her own request,
// sam lists and approves it from his, then revokes it; a destination no
// access rule covers is refused with exit status 3 and says why.
func TestAccessCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a mesh")
	}
	m := testmesh.New(t, testmesh.Options{Policy: `{
		"groups": {"group:eng": ["ann@example.com"], "group:sre": ["sam@example.com"]},
		"tagOwners": {"tag:prod-db": ["autogroup:admin"]},
		"acls": [],
		"access": [{"src": ["group:eng"], "dst": ["tag:prod-db:5432"], "approvers": ["group:sre"], "maxDuration": "4h", "reason": "required"}],
	}`})
	ann, sam := m.User("ann@example.com"), m.User("sam@example.com")
	sockets := map[string]string{}
	for name, u := range map[string]store.User{"ann-laptop": ann, "sam-laptop": sam} {
		d := m.AddDaemon(name)
		if _, _, err := d.Up(localapi.UpRequest{AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: u.ID})}, nil); err != nil {
			t.Fatalf("%s up: %v", name, err)
		}
		sockets[name] = serveDaemon(t, d.Daemon)
	}
	exit := func(err error) int {
		var ee *cli.ExitError
		switch {
		case err == nil:
			return 0
		case errors.As(err, &ee):
			return ee.Code
		}
		return 1
	}

	out, _, err := warren(t, "--socket", sockets["ann-laptop"], "access", "request", "tag:prod-db:5432", "--for", "2h", "--reason", "INC-4211", "--json")
	var filed accessJSON
	if err != nil || json.Unmarshal([]byte(out), &filed) != nil || len(filed.Requests) != 1 || filed.Requests[0].State != wire.AccessPending {
		t.Fatalf("request: %q, %v", out, err)
	}
	id := filed.Requests[0].ID
	if _, _, err := warren(t, "--socket", sockets["ann-laptop"], "access", "approve", id); exit(err) != exitRefused || !strings.Contains(err.Error(), "own request") {
		t.Fatalf("self-approval: %v, want exit %d", err, exitRefused)
	}
	_, _, err = warren(t, "--socket", sockets["ann-laptop"], "access", "request", "tag:prod-db:22", "--for", "1h", "--reason", "x")
	if exit(err) != exitRefused || !strings.Contains(err.Error(), "no-rule") || !strings.Contains(err.Error(), "tag:prod-db:22") {
		t.Fatalf("request without a rule: %v, want exit %d naming the destination", err, exitRefused)
	}
	out, _, err = warren(t, "--socket", sockets["sam-laptop"], "access", "list", "--pending")
	if err != nil || !hasRow(out, id, "pending", "tag:prod-db:5432") {
		t.Fatalf("sam's pending list: %q, %v", out, err)
	}
	out, _, err = warren(t, "--socket", sockets["sam-laptop"], "access", "approve", id, "--for", "1h")
	if err != nil || !strings.Contains(out, id+" active") {
		t.Fatalf("approve: %q, %v", out, err)
	}
	out, _, err = warren(t, "--socket", sockets["sam-laptop"], "access", "revoke", id, "--reason", "done")
	if err != nil || !strings.Contains(out, id+" revoked") {
		t.Fatalf("revoke: %q, %v", out, err)
	}
	out, _, err = warren(t, "--socket", sockets["ann-laptop"], "access", "list")
	if err != nil || !hasRow(out, id, "revoked") {
		t.Fatalf("ann's list: %q, %v", out, err)
	}
}
