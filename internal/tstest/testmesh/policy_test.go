package testmesh

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/node/controlclient"
)

// engDBPolicy lets group:eng reach tag:db on 5432 and nothing else.
const engDBPolicy = `// The policy of the end-to-end test.
{
	"groups": {"group:eng": ["ann@example.com"]},
	"tagOwners": {"tag:db": ["autogroup:admin"]},
	"acls": [
		{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5432"]},
	],
	"tests": [
		{"src": "ann@example.com", "accept": ["tag:db:5432"], "deny": ["tag:db:22"]},
		{"src": "bob@example.com", "deny": ["tag:db:5432"]},
	],
}
`

// echoOn serves a TCP echo on port of n's mesh address until the test ends.
func echoOn(t *testing.T, n *Node, port uint16) {
	t.Helper()
	ln, err := n.Engine().ListenTCP(port)
	must(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
}

// echoes reports whether a round trip through c works within timeout.
func echoes(c net.Conn, timeout time.Duration) bool {
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("ping")); err != nil {
		return false
	}
	buf := make([]byte, 4)
	_, err := io.ReadFull(c, buf)
	return err == nil && string(buf) == "ping"
}

// untilCut echoes over c until an echo goes unanswered for a second, and
// returns when that echo was sent, counted from since: by then the
// connection was cut. It fails t if an echo is still answered more than
// within after since. Only a second of silence counts as cut: a busy
// machine can delay an answer by a tenth of a second, and that answer
// would then be read as the reply to the next echo.
func untilCut(t *testing.T, c net.Conn, since time.Time, within time.Duration, what string) time.Duration {
	t.Helper()
	for {
		sent := time.Now()
		if !echoes(c, time.Second) {
			return sent.Sub(since)
		}
		if time.Since(since) > within {
			t.Fatalf("%s: the connection still works %v after", what, within)
		}
	}
}

// dialWithin dials dst from src, giving up after timeout.
func dialWithin(src *Node, dst netip.AddrPort, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return src.Engine().DialContext(ctx, "tcp", dst)
}

func TestPolicyEndToEnd(t *testing.T) {
	m := New(t, Options{Policy: engDBPolicy})
	ann := m.User("ann@example.com")
	bob := m.User("bob@example.com")
	db := m.AddNode("db", NodeOptions{DataPlane: true,
		AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID, Tags: []string{"tag:db"}}), Tags: []string{"tag:db"}})
	laptop := m.AddNode("ann-laptop", NodeOptions{DataPlane: true, AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID})})
	outsider := m.AddNode("bob-laptop", NodeOptions{DataPlane: true, AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: bob.ID})})

	// Netmaps are trimmed to what the policy allows, both ways.
	must(t, laptop.WaitFor(wait, func(nm *controlclient.Netmap) bool {
		return HasPeers("db")(nm) && len(nm.Peers[0].Endpoints) > 0 && laptop.Engine() != nil
	}))
	must(t, db.WaitFor(wait, func(nm *controlclient.Netmap) bool {
		return HasPeers("ann-laptop")(nm) && len(nm.Peers[0].Endpoints) > 0 && db.Engine() != nil
	}))
	must(t, outsider.WaitFor(wait, func(nm *controlclient.Netmap) bool { return HasPeers()(nm) && outsider.Engine() != nil }))

	echoOn(t, db, 5432)
	echoOn(t, db, 22)
	dbAddr := addr4(t, db)
	pg, ssh := netip.AddrPortFrom(dbAddr, 5432), netip.AddrPortFrom(dbAddr, 22)

	c, err := dialWithin(laptop, pg, wait)
	must(t, err)
	defer c.Close()
	if !echoes(c, wait) {
		t.Fatal("group:eng cannot reach tag:db:5432")
	}
	if c2, err := dialWithin(laptop, ssh, time.Second); err == nil {
		c2.Close()
		t.Fatal("group:eng reached tag:db:22, which no rule allows")
	}
	if c3, err := dialWithin(outsider, pg, time.Second); err == nil {
		c3.Close()
		t.Fatal("a user outside group:eng reached tag:db:5432")
	}

	// A broken file (here: a rule naming an unknown group) is rejected and
	// access stays as it was.
	m.WritePolicy(strings.Replace(engDBPolicy, `"src": ["group:eng"]`, `"src": ["group:engg"]`, 1))
	poll.UntilTrue(t, wait, "the broken policy file to be rejected", func() bool { return m.Coord.Policy().Status().Rejected != nil })
	if !echoes(c, wait) {
		t.Fatal("a rejected policy file changed access")
	}

	// Removing the rule revokes access: the established connection stops
	// passing packets within a second and new connections fail.
	revoked := strings.Replace(engDBPolicy, `{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5432"]},`, ``, 1)
	revoked = strings.Replace(revoked, `"accept": ["tag:db:5432"], `, ``, 1)
	m.WritePolicy(revoked)
	// The README promises "within a second"; the bound is wider so a busy
	// machine does not fail it. The time taken is logged.
	took := untilCut(t, c, time.Now(), 5*time.Second, "revocation (promised within a second)")
	t.Logf("revocation cut the established connection at most %v after the file was written", took.Round(time.Millisecond))
	if echoes(c, time.Second) {
		t.Fatal("established connection works again after revocation")
	}
	if c4, err := dialWithin(laptop, pg, time.Second); err == nil {
		c4.Close()
		t.Fatal("new connection succeeded after revocation")
	}
}
