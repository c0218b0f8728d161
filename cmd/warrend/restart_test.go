package main

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/netns"
	"github.com/warrenmesh/warren/internal/tstest/netns/natlab"
	"github.com/warrenmesh/warren/internal/tstest/poll"
)

// echoOnceFrom dials addr from the left host, sends a byte and reads it
// back within timeout: data passed both ways through the mesh.
func (m *natMesh) echoOnceFrom(addr netip.AddrPort, timeout time.Duration) error {
	return m.lab.Left.Host.Do(func() error {
		c, err := net.DialTimeout("tcp", addr.String(), timeout)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(timeout))
		if _, err := c.Write([]byte{'w'}); err != nil {
			return err
		}
		_, err = io.ReadFull(c, make([]byte, 1))
		return err
	})
}

// TestRestartedServerReachableAtOnce stops the right node's warrend (TUN
// mode) with SIGKILL or SIGTERM while the left one talks to it, and starts
// it again on the same state: same keys, address and UDP port. The left node still
// holds the WireGuard session of the killed process; before the fix data
// passed again only after 15-22 s. The goal is 2 s from the restarted
// node being up (its netmap in place); the test allows 5 s and logs the
// measured times.
func TestRestartedServerReachableAtOnce(t *testing.T) {
	bin := natMeshBinaries(t)
	for _, tc := range []struct {
		name string
		stop func(*netns.Process)
	}{
		{"kill -9", (*netns.Process).Kill},
		{"graceful", func(p *netns.Process) {
			if err := p.Stop(); err != nil {
				t.Errorf("stop warrend: %v", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { testRestart(t, bin, tc.stop) })
	}
}

func testRestart(t *testing.T, bin string, stop func(*netns.Process)) {
	lab := natlab.New(t, natlab.EndpointIndependent, natlab.EndpointIndependent)
	m := startNATMesh(t, bin, lab)
	addr := m.echoServer()
	c := m.dial(addr)
	stream(t, c, 100*time.Millisecond, nil)
	m.waitPath("left", "direct ", 5*time.Second)
	c.Close()

	stop(m.daemons["right"])
	started := time.Now()
	d := lab.Right.Host.Start(m.args["right"][0], m.args["right"][1:]...)
	m.daemons["right"] = d
	if _, err := d.WaitFor("warrend running", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	poll.UntilTrue(t, 30*time.Second, "the restarted node to see its peer", func() bool {
		p, ok := m.peer("right", "left")
		return ok && len(p.Endpoints) > 0
	})
	up := time.Now()

	deadline := up.Add(25 * time.Second) // bounds the loop; the old code needed 15-22 s
	for {
		err := m.echoOnceFrom(addr, 300*time.Millisecond)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no data passed within %v of the restarted node being up: %v", time.Since(up), err)
		}
	}
	took := time.Since(up)
	t.Logf("data passed %v after the restarted node was up, %v after it was started (goal 2 s); left's path %q",
		took.Round(time.Millisecond), time.Since(started).Round(time.Millisecond), m.path("left"))
	if took > 5*time.Second {
		t.Fatalf("data passed only %v after the restarted node was up; want within 5 s", took)
	}
}
