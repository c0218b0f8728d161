//go:build linux

package hatest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrenmesh/warren/derp"
	"github.com/warrenmesh/warren/internal/tstest/buildtest"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/tstest/testmesh"
	"github.com/warrenmesh/warren/node/controlclient"
)

// TestReplicasWithStandaloneRelay follows the README's advice for relays
// with replicas: both replicas run without their embedded relay and list
// one standalone warren-derp in the same --derp-map; the relay admits
// nodes through the balancer. Two relay-only nodes on different replicas
// meet on it; their stream survives kill -9 of one replica (the relay
// re-asks the surviving one); a user disabled through the replica that
// came back is dropped from the relay, which follows the other one.
func TestReplicasWithStandaloneRelay(t *testing.T) {
	dir := t.TempDir()
	relayAddr := buildtest.FreePort(t)
	relayURL := "http://" + relayAddr + "/derp"
	mapFile, tokenFile := filepath.Join(dir, "regions.json"), filepath.Join(dir, "relay-token")
	if err := os.WriteFile(mapFile, []byte(fmt.Sprintf(`{"regions": [{"id": 1, "code": "test", "url": %q}]}`, relayURL)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte("relay-token-for-the-ha-test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, "--derp-map", mapFile, "--relay-admit-token-file", tokenFile)
	startRelay(t, filepath.Join(c.bins, "warren-derp"), dir, relayAddr, c.lb.URL+"/api/v1/relay/admit", tokenFile)

	annKey, bobKey := authKey(c.a, "ann@example.com"), authKey(c.a, "bob@example.com")
	relayed := func(k string) testmesh.NodeOptions {
		return testmesh.NodeOptions{AuthKey: k, DataPlane: true, RelayOnly: true}
	}
	a1 := c.joinWith(t, c.a, "a1", relayed(annKey))
	b1 := c.joinWith(t, c.b, "b1", relayed(annKey))
	must(t, a1.WaitFor(wait, peersAre("b1")))
	must(t, b1.WaitFor(wait, peersAre("a1")))
	s := testmesh.StartStream(t, a1, b1, 7300)
	s.WaitReceived(t, 64<<10, wait)
	if p := a1.Engine().Path(b1.ID.Node.Public()); !strings.Contains(p, "relay") {
		t.Fatalf("a1 -> b1 path %q, want the relay", p)
	}

	// bob's node on a, held on the relay by a raw relay client.
	a2 := c.joinWith(t, c.a, "a2", testmesh.NodeOptions{AuthKey: bobKey})
	must(t, a2.WaitFor(wait, func(*controlclient.Netmap) bool { return true }))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	bobOnRelay, err := derp.Dial(ctx, relayURL, a2.ID.Node, derp.ClientOptions{})
	must(t, err)
	t.Cleanup(func() { bobOnRelay.Close() })

	// kill -9 a: the relayed stream goes on.
	s.MarkGap()
	sessions := a1.Client.Sessions()
	c.a.kill9()
	poll.UntilTrue(t, wait, "a1 back on a control channel", func() bool { return a1.Client.Sessions() > sessions && a1.Client.Connected() })
	s.WaitReceived(t, 256<<10, wait)
	t.Logf("relayed stream through the failover: %d bytes, longest pause %v", s.Received(), s.MaxGap())

	// a comes back; bob disabled through a (the relay asks b, having lost
	// a): the relay drops his node.
	c.a.start()
	poll.UntilTrue(t, wait, "the balancer to see replica a up again", func() bool { up, _ := c.lb.Up("a"); return up })
	start := time.Now()
	c.a.admin("users", "disable", "bob@example.com")
	select {
	case <-bobOnRelay.Done():
	case <-time.After(wait):
		t.Fatalf("bob's node still on the relay %v after he was disabled", wait)
	}
	var se *derp.ServerError
	if err := bobOnRelay.Err(); !errors.As(err, &se) {
		t.Fatalf("relay client ended with %v, want the relay's disconnect", err)
	}
	t.Logf("disabled user's node off the standalone relay %v after the admin command", time.Since(start))
	if _, err := derp.Dial(ctx, relayURL, a2.ID.Node, derp.ClientOptions{}); err == nil {
		t.Fatal("the disabled user's node connected to the relay again")
	}
	s.CheckFlowing(t)
}

// startRelay runs warren-derp on addr, admitting through admitURL, until
// the test ends.
func startRelay(t *testing.T, bin, dir, addr, admitURL, tokenFile string) {
	t.Helper()
	cmd := exec.Command(bin, "--listen", addr, "--stun", "", "--key-file", filepath.Join(dir, "relay.key"),
		"--admit-url", admitURL, "--admit-token-file", tokenFile, "--max-conns-per-ip", "0", "--log-level", "debug")
	logPath := filepath.Join(dir, "relay.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("warren-derp's log:\n%s", b)
		}
	})
	poll.Until(t, wait, "warren-derp to serve", func() error {
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("warren-derp exited:\n%s", b)
		default:
		}
		resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + addr + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
}
