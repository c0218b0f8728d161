package testmesh

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/node/controlclient"
)

// TestDataPlaneOutlivesControl: while the control channel is down (the
// coordinator closed under the connected clients and started again; then
// cut without a goodbye, the coordinator restarted meanwhile) the nodes
// keep their WireGuard peers and their packet filter: a TCP stream between them never stops, and a new
// connection (which the filter must admit) still opens. With the
// production backoff (1 s, full jitter) the nodes are back within 5 s of
// the coordinator's return; the test logs the measured times.
func TestDataPlaneOutlivesControl(t *testing.T) {
	m := New(t, Options{})
	u := m.User("ann@example.com")
	k := m.AuthKey(registry.AuthKeyRequest{UserID: u.ID, Reusable: true})
	g := newGate(t, strings.TrimPrefix(m.URL, "http://"))
	prod := NodeOptions{AuthKey: k, DataPlane: true, ControlURL: g.URL(), MinBackoff: time.Second, MaxBackoff: 30 * time.Second}
	a, b := m.AddNode("a", prod), m.AddNode("b", prod)
	for _, n := range []*Node{a, b} {
		must(t, n.WaitFor(wait, func(nm *controlclient.Netmap) bool { return len(nm.Peers) == 1 && nm.Peers[0].Online }))
	}
	s := StartStream(t, a, b, 7100)
	s.WaitReceived(t, 64<<10, wait)

	// The coordinator closed under connected clients (whose backoff has
	// not grown: this comes first): back within 5 s of its return (a
	// restart's own time is the store's, not the nodes').
	m.Restart()
	start := time.Now()
	for _, n := range []*Node{a, b} {
		poll.UntilTrue(t, wait, n.Name+" to reconnect after the restart", func() bool { return n.Client.Sessions() >= 2 && n.Client.Connected() })
	}
	took := time.Since(start)
	t.Logf("coordinator closed under connected clients: both back in %v (goal 5 s)", took)
	if took > 5*time.Second {
		t.Errorf("nodes reconnected %v after the coordinator came back, want within 5 s", took)
	}
	s.WaitReceived(t, 64<<10, wait)

	// Cut: every control connection dropped, new ones refused.
	s.MarkGap()
	g.setShut(true)
	for _, n := range []*Node{a, b} {
		poll.UntilTrue(t, wait, n.Name+" to see its control channel cut", func() bool { return !n.Client.Connected() })
	}
	s.WaitReceived(t, 256<<10, wait)
	for _, n := range []*Node{a, b} {
		st, err := n.Engine().Status()
		must(t, err)
		if len(st) != 1 {
			t.Fatalf("%s: %d WireGuard peers while the control channel is down, want 1", n.Name, len(st))
		}
	}
	// A new flow needs the filter to admit it at b.
	ln, err := b.Engine().ListenTCP(7101)
	must(t, err)
	defer ln.Close()
	go echoOnce(ln)
	must(t, roundTrip(a, netip.AddrPortFrom(addr4(t, b), 7101), wait))

	// The coordinator closes under its (gated) clients and starts again;
	// the gate opens: the nodes reconnect by themselves.
	m.Restart()
	g.setShut(false)
	// While cut their waits grew (up to MaxBackoff, 30 s, on a machine
	// slow enough to keep the gate shut that long), so allow for that.
	opened := time.Now()
	back := map[*Node]time.Duration{}
	poll.UntilTrue(t, 45*time.Second, "both to reconnect", func() bool {
		for _, n := range []*Node{a, b} {
			if _, ok := back[n]; !ok && n.Client.Sessions() >= 3 && n.Client.Connected() {
				back[n] = time.Since(opened)
			}
		}
		return len(back) == 2
	})
	t.Logf("after the gate opened: a back in %v, b in %v (their backoff ceilings had grown while cut)", back[a], back[b])

	s.WaitReceived(t, 64<<10, wait)
	s.CheckFlowing(t)
	t.Logf("stream: %d bytes, longest pause %v", s.Received(), s.MaxGap())
}
