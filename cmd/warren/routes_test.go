package main

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/coordinator/api"
	"github.com/warrenmesh/warren/internal/cli"
	"github.com/warrenmesh/warren/internal/routes"
	"github.com/warrenmesh/warren/internal/tstest/buildtest"
	"github.com/warrenmesh/warren/internal/tstest/poll"
)

// TestAdvertiseAndApproveRoutes: a node advertises routes with warren up,
// the coordinator shows them unapproved, an admin approves and disables
// them with warren-coordinator routes, and a policy's autoApprovers
// approve them; bad routes never leave the CLI. All real processes.
func TestAdvertiseAndApproveRoutes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	bin := buildtest.Build(t, "warren-coordinator", "warrend")
	dir := t.TempDir()
	listen, coordDir := startCoordinator(t, bin, dir)
	admin := func(args ...string) ([]byte, error) {
		var stderr strings.Builder
		cmd := exec.Command(filepath.Join(bin, "warren-coordinator"), append(args, "--state-dir", coordDir)...)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return out, errors.New(strings.TrimSpace(stderr.String()))
		}
		return out, nil
	}
	mustAdmin := func(args ...string) []byte {
		t.Helper()
		out, err := admin(args...)
		if err != nil {
			t.Fatalf("warren-coordinator %v: %v", args, err)
		}
		return out
	}
	mustAdmin("users", "create", "ann@example.com")
	var key struct{ Key string }
	if err := json.Unmarshal(mustAdmin("keys", "create", "--user", "ann@example.com", "--json"), &key); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "authkey")
	if err := os.WriteFile(keyFile, []byte(key.Key), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "router.sock")
	proc(t, dir, "router", filepath.Join(bin, "warrend"), "--state-dir", filepath.Join(dir, "router"), "--socket", sock,
		"--socks5", "", "--endpoint", "127.0.0.1")
	poll.UntilTrue(t, wait, sock, func() bool {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	// Bad routes are usage errors (exit status 2), refused before the
	// daemon is asked anything.
	for _, bad := range []string{"10.20.0.1/24", "100.64.0.0/10", "0.0.0.0/0", "corp-db"} {
		_, _, err := warren(t, "--socket", sock, "up", "--coordinator", "http://"+listen, "--auth-key-file", keyFile, "--advertise-routes", bad)
		var ee *cli.ExitError
		if !errors.As(err, &ee) || ee.Code != 2 || !errors.Is(err, routes.ErrInvalid) {
			t.Fatalf("up --advertise-routes %s: %v; want a usage error", bad, err)
		}
	}
	if _, _, err := warren(t, "--socket", sock, "up", "--coordinator", "http://"+listen, "--auth-key-file", keyFile, "--hostname", "router",
		"--advertise-routes", "fd00:20::/64, 10.20.0.0/24"); err != nil {
		t.Fatal(err)
	}
	routesOf := func() api.NodeRoutes {
		t.Helper()
		var all []api.NodeRoutes
		if err := json.Unmarshal(mustAdmin("routes", "list", "--json"), &all); err != nil || len(all) != 1 {
			t.Fatalf("routes list: %+v, %v", all, err)
		}
		return all[0]
	}
	nr := routesOf()
	if routes.Format(nr.Advertised) != "10.20.0.0/24,fd00:20::/64" || len(nr.Approved) != 0 || len(nr.Enabled) != 0 {
		t.Fatalf("after up: %+v", nr)
	}
	id := strconv.FormatInt(nr.ID, 10)

	// Approve one: it is in force. The table says so too.
	mustAdmin("routes", "approve", id, "10.20.0.0/24")
	if nr = routesOf(); routes.Format(nr.Enabled) != "10.20.0.0/24" {
		t.Fatalf("after approval: %+v", nr)
	}
	table := string(mustAdmin("nodes", "routes", id))
	if !strings.Contains(table, "10.20.0.0/24") || !strings.Contains(table, "IN FORCE") {
		t.Fatalf("nodes routes table:\n%s", table)
	}
	if _, err := admin("routes", "approve", id, "10.99.0.0/24"); err == nil || !strings.Contains(err.Error(), "does not advertise 10.99.0.0/24") {
		t.Fatalf("approving a route not advertised: %v", err)
	}

	// The exit node is added; the subnet routes stay as they were.
	if _, _, err := warren(t, "--socket", sock, "up", "--advertise-exit-node"); err != nil {
		t.Fatal(err)
	}
	poll.UntilTrue(t, wait, "the exit routes at the coordinator", func() bool {
		return routes.Format(routesOf().Advertised) == "0.0.0.0/0,10.20.0.0/24,::/0,fd00:20::/64"
	})
	mustAdmin("routes", "approve", id, "::/0")
	if nr = routesOf(); !nr.ExitNode || routes.Format(nr.Enabled) != "0.0.0.0/0,10.20.0.0/24,::/0" {
		t.Fatalf("after approving the exit node: %+v", nr)
	}
	mustAdmin("routes", "disable", id, "10.20.0.0/24", "0.0.0.0/0")
	if nr = routesOf(); len(nr.Enabled) != 0 {
		t.Fatalf("after disabling: %+v", nr)
	}

	// A policy whose autoApprovers cover the route approves it.
	policyFile := filepath.Join(dir, "policy.hujson")
	if err := os.WriteFile(policyFile, []byte(`{
		"autoApprovers": {"routes": {"fd00:20::/48": ["ann@example.com"]}},
		"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
	}`), 0o600); err != nil {
		t.Fatal(err)
	}
	mustAdmin("policy", "apply", policyFile)
	if nr = routesOf(); routes.Format(nr.Enabled) != "fd00:20::/64" {
		t.Fatalf("after the policy: %+v", nr)
	}

	// Every change is in the audit log.
	for _, action := range []string{"node.routes.advertise", "node.routes.approve", "node.routes.disable"} {
		var evs []api.AuditEvent
		if err := json.Unmarshal(mustAdmin("audit", "--action", action, "--json"), &evs); err != nil || len(evs) == 0 {
			t.Errorf("audit %s: %d events, %v", action, len(evs), err)
		}
	}
}
