package natlab_test

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/netns/natlab"
)

// TestHolePunch checks hole punching with plain UDP sockets: two hosts
// learn their mapped endpoints from STUN, then both send to the other's
// mapped endpoint. Behind two endpoint-independent NATs packets get
// through both ways within a second; with a symmetric NAT (or BlockUDP) on
// one side, none get through in that time.
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
			gotL, gotR := punch(pcL, pcR, mL, mR, time.Second)
			t.Logf("mapped left %s, right %s; after %s left got a packet: %v, right: %v",
				mL, mR, time.Since(start).Round(time.Millisecond), gotL, gotR)
			if tt.want && !(gotL && gotR) {
				t.Errorf("left got a packet: %v, right got a packet: %v; want both within a second", gotL, gotR)
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
