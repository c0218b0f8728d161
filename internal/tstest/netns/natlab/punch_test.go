package natlab_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/warrenmesh/warren/internal/tstest/netns/natlab"
	"github.com/warrenmesh/warren/internal/tstest/poll"
)

// TestHolePunch checks hole punching with plain UDP sockets: two hosts
// learn their mapped endpoints from STUN, then both send to the other's
// mapped endpoint. Behind two endpoint-independent NATs packets get
// through both ways (in milliseconds; the time is logged); with a symmetric
// NAT (or BlockUDP) on one side, none get through in two seconds.
func TestHolePunch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		left, right natlab.NAT
		want        bool
	}{
		{natlab.EndpointIndependent, natlab.EndpointIndependent, true},
		{natlab.EndpointIndependent, natlab.None, true},
		{natlab.EndpointIndependent, natlab.Symmetric, false},
		{natlab.Symmetric, natlab.EndpointIndependent, false},
		{natlab.BlockUDP, natlab.EndpointIndependent, false},
	}
	for _, tt := range tests {
		t.Run(tt.left.String()+"+"+tt.right.String(), func(t *testing.T) {
			t.Parallel()
			lab := newLab(t, tt.left, tt.right)
			pcL, pcR := listenUDP(t, lab.Left.Host), listenUDP(t, lab.Right.Host)
			mL, mR := stunOrNot(t, pcL, lab.Left, tt.left), stunOrNot(t, pcR, lab.Right, tt.right)
			start := time.Now()
			gotL, gotR := punch(pcL, pcR, mL, mR, punchWindow(tt.want))
			t.Logf("mapped left %s, right %s; after %s left got a packet: %v, right: %v",
				mL, mR, time.Since(start).Round(time.Millisecond), gotL, gotR)
			if tt.want && !(gotL && gotR) {
				t.Errorf("left got a packet: %v, right got a packet: %v; want both", gotL, gotR)
			}
			if !tt.want && (gotL || gotR) {
				t.Errorf("left got a packet: %v, right got a packet: %v; want neither", gotL, gotR)
			}
		})
	}
}

// stunOrNot returns pc's mapped endpoint, or for BlockUDP (where STUN gets
// no answer) the endpoint a peer would guess: the WAN address and pc's own
// port, which Linux would have kept.
func stunOrNot(t *testing.T, pc net.PacketConn, site *natlab.Site, kind natlab.NAT) netip.AddrPort {
	t.Helper()
	if kind == natlab.BlockUDP {
		return netip.AddrPortFrom(site.WANIP, localPort(pc))
	}
	m, err := mapped(pc, stunA, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// punchWindow is how long punch and reaches try. Packets that should pass
// get a generous window, since both return as soon as they have them and a
// busy machine must not fail the test; packets that should not pass get a
// short one, which cannot make them pass.
func punchWindow(shouldPass bool) time.Duration {
	if shouldPass {
		return 10 * time.Second
	}
	return 2 * time.Second
}

// punch makes a and b send to each other's mapped endpoint (ma, mb) every
// 50ms for up to timeout, and reports whether each received a packet from
// the other's mapped endpoint. It returns as soon as both have.
func punch(a, b net.PacketConn, ma, mb netip.AddrPort, timeout time.Duration) (aGot, bGot bool) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	gotA, gotB := make(chan struct{}), make(chan struct{})
	side := func(pc net.PacketConn, self, peer netip.AddrPort, got chan struct{}) {
		msg := []byte("punch from " + self.String())
		want := []byte("punch from " + peer.String())
		wg.Add(2)
		go func() { // send until the context ends
			defer wg.Done()
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				pc.WriteTo(msg, net.UDPAddrFromAddrPort(peer))
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
		go func() { // receive until the peer's packet or the context's end
			defer wg.Done()
			stop := context.AfterFunc(ctx, func() { pc.SetReadDeadline(time.Now()) })
			defer stop()
			defer pc.SetReadDeadline(time.Time{})
			buf := make([]byte, 1500)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				if ap := from.(*net.UDPAddr).AddrPort(); netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()) == peer && bytes.Equal(buf[:n], want) {
					close(got)
					return
				}
			}
		}()
	}
	side(a, ma, mb, gotA)
	side(b, mb, ma, gotB)
	for gotA != nil || gotB != nil {
		select {
		case <-gotA:
			aGot, gotA = true, nil
		case <-gotB:
			bGot, gotB = true, nil
		case <-ctx.Done():
			return aGot, bGot
		}
	}
	return aGot, bGot
}

// TestUnfilteredNeedsAnOpener shows why plain hole punching fails between
// two Unfiltered routers, and what works instead. Plain: whichever host
// sends first reaches the other router itself (nothing drops it), and the
// conntrack entry it leaves there makes MASQUERADE give the other host's
// reply flow a new WAN port, which the first router then treats as
// unsolicited too. With an opener: the left host first sends one packet
// whose TTL lets it through its own router but not past the internet's
// router between the sites, so the left router maps the flow while the
// right router never hears of it; the right host's packets then arrive as
// replies, and the left host's after them too.
func TestUnfilteredNeedsAnOpener(t *testing.T) {
	t.Parallel()
	for _, opener := range []bool{false, true} {
		t.Run(fmt.Sprintf("opener=%v", opener), func(t *testing.T) {
			t.Parallel()
			lab := newLab(t, natlab.Unfiltered, natlab.Unfiltered)
			pcL, pcR := listenUDP(t, lab.Left.Host), listenUDP(t, lab.Right.Host)
			mL, mR := stunOrNot(t, pcL, lab.Left, natlab.Unfiltered), stunOrNot(t, pcR, lab.Right, natlab.Unfiltered)
			if opener {
				p := ipv4.NewPacketConn(pcL)
				if err := p.SetTTL(2); err != nil {
					t.Fatal(err)
				}
				if _, err := pcL.WriteTo([]byte("opener"), net.UDPAddrFromAddrPort(mR)); err != nil {
					t.Fatal(err)
				}
				if err := p.SetTTL(64); err != nil {
					t.Fatal(err)
				}
			} else {
				// The left host goes first here too, so that the outcome
				// does not depend on which packet wins the race.
				if _, err := pcL.WriteTo([]byte("first"), net.UDPAddrFromAddrPort(mR)); err != nil {
					t.Fatal(err)
				}
			}
			waitConntrack(t, lab.Left.Router, mR)
			if opener {
				// The right host answers first (as a peer asked to call
				// back does), then both send.
				if !reaches(pcR, pcL, mL, punchWindow(true)) {
					t.Errorf("with an opener: the right host's packets do not reach the left host")
				}
			}
			gotL, gotR := punch(pcL, pcR, mL, mR, punchWindow(opener))
			t.Logf("mapped left %s, right %s; left got a packet: %v, right: %v", mL, mR, gotL, gotR)
			if opener && !(gotL && gotR) {
				t.Errorf("with an opener: left got a packet: %v, right: %v; want both", gotL, gotR)
			}
			if !opener && (gotL || gotR) {
				t.Errorf("without an opener: left got a packet: %v, right: %v; want neither (has the router stopped taking unsolicited packets?)", gotL, gotR)
			}
		})
	}
}

// waitConntrack waits until r's conntrack table has a flow to dst.
func waitConntrack(t *testing.T, r *natlab.Router, dst netip.AddrPort) {
	t.Helper()
	want := fmt.Sprintf("dst=%s sport=", dst.Addr())
	port := fmt.Sprintf("dport=%d ", dst.Port())
	poll.Until(t, 10*time.Second, "a conntrack flow to "+dst.String()+" on the router", func() error {
		table := r.Conntrack()
		for _, line := range strings.Split(table, "\n") {
			if strings.Contains(line, want) && strings.Contains(line, port) {
				return nil
			}
		}
		return fmt.Errorf("the table:\n%s", table)
	})
}

// reaches sends from src to dst (the mapped endpoint of the socket dstPC)
// every 50ms until dstPC receives one of them or timeout passes, and
// reports whether it did.
func reaches(src, dstPC net.PacketConn, dst netip.AddrPort, timeout time.Duration) bool {
	msg := []byte("reaches " + dst.String())
	deadline := time.Now().Add(timeout)
	defer dstPC.SetReadDeadline(time.Time{})
	buf := make([]byte, 1500)
	for time.Now().Before(deadline) {
		src.WriteTo(msg, net.UDPAddrFromAddrPort(dst))
		dstPC.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		for {
			n, _, err := dstPC.ReadFrom(buf)
			if err != nil {
				break
			}
			if bytes.Equal(buf[:n], msg) {
				return true
			}
		}
	}
	return false
}
