//go:build linux

package hatest

import (
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/tstest/testmesh"
)

// TestFrozenReplica: a replica that stops answering without closing
// anything (SIGSTOP: a hung process, or a machine gone from the network)
// sends no reset, so its nodes cannot tell by themselves; the balancer's
// health check marks it down and cuts its connections, and its nodes are
// on the other replica within 5 s, while a TCP stream between two nodes
// keeps flowing. The measured time is logged.
func TestFrozenReplica(t *testing.T) {
	c := newCluster(t)
	annKey := authKey(c.a, "ann@example.com")
	a1 := c.joinOn(t, c.a, "a1", annKey)
	b1 := c.joinOn(t, c.b, "b1", annKey)
	must(t, a1.WaitFor(wait, peersAre("b1")))
	must(t, b1.WaitFor(wait, peersAre("a1")))
	s := testmesh.StartStream(t, a1, b1, 7400)
	s.WaitReceived(t, 64<<10, wait)

	sessions := a1.Client.Sessions()
	s.MarkGap()
	start := time.Now()
	c.a.freeze()
	poll.UntilTrue(t, wait, "a1 back on a control channel", func() bool { return a1.Client.Sessions() > sessions && a1.Client.Connected() })
	took := time.Since(start)
	t.Logf("replica a frozen: its node on b %v later (goal 5 s; the health check takes about 1 s of it)", took)
	if took > failoverBound {
		t.Errorf("a1 reconnected %v after replica a froze, want within %v", took, failoverBound)
	}
	if got, err := c.lb.Sessions("b"); err != nil || got != 2 {
		t.Errorf("replica b holds %d control connections (%v), want both nodes'", got, err)
	}
	s.WaitReceived(t, 256<<10, wait)
	t.Logf("stream a1 -> b1 through the freeze: %d bytes, longest pause %v", s.Received(), s.MaxGap())
}
