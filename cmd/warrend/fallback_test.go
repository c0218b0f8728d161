package main

import (
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/netns/natlab"
)

// fallbackBound is the README's promise ("Relays and NAT traversal"): when
// UDP stops working mid-session, traffic moves to the relay within it.
const fallbackBound = 5 * time.Second

// TestRelayFallbackWhenUDPBlocked blocks UDP at the left router in the
// middle of a transfer over a direct path: the TCP connection inside the
// tunnel must survive, the longest stall (one echoed chunk's round trip,
// TCP's retransmission back-off included) must stay within the documented
// bound, and both sides must end on the relay.
func TestRelayFallbackWhenUDPBlocked(t *testing.T) {
	bin := natMeshBinaries(t)
	lab := natlab.New(t, natlab.EndpointIndependent, natlab.EndpointIndependent)
	m := startNATMesh(t, bin, lab)
	c := m.dial(m.echoServer())
	stream(t, c, 100*time.Millisecond, nil)
	m.waitPath("left", "direct ", 5*time.Second)
	m.waitPath("right", "direct ", 5*time.Second)
	blocked := false
	worst, n := stream(t, c, 8*time.Second, func(elapsed time.Duration) {
		if !blocked && elapsed > time.Second {
			blocked = true
			if err := lab.Left.Router.SetNAT(natlab.BlockUDP); err != nil {
				t.Fatal(err)
			}
			t.Log("left router blocks UDP")
		}
	})
	t.Logf("transfer survived UDP being blocked: %d KiB, longest stall %v (documented bound %v)", n>>10, worst.Round(time.Millisecond), fallbackBound)
	if worst > fallbackBound {
		t.Errorf("the transfer stalled for %v; the README promises the relay within %v", worst, fallbackBound)
	}
	for _, name := range []string{"left", "right"} {
		if p := m.path(name); !strings.HasPrefix(p, "relay ") {
			t.Errorf("%s's path is %q after UDP was blocked, want the relay", name, p)
		}
	}
}
