package magic

import (
	"math"
	"time"

	"github.com/warrenmesh/warren/internal/key"
)

// Liveness: how long packets to a peer have gone unanswered. A subnet
// router whose network is cut keeps its control channel (and its Online
// flag) for as long as the coordinator's keep-alives allow; the data
// plane sees the silence within seconds, and the engine uses Unanswered
// to hand the router's prefixes to another one.

// notWaiting is peer.unanswered when nothing sent is awaiting an answer.
const notWaiting = math.MinInt64

// probeAfter is how long sent packets may go unanswered before the
// maintenance loop pings a direct path out of turn, so that a healthy
// peer receiving a one-way flow answers well before a caller of
// Unanswered gives up on it.
const probeAfter = 750 * time.Millisecond

// sent notes a WireGuard packet sent to p at now: the first one since p
// was last heard from starts the wait.
func (p *peer) sent(now int64) {
	if p.unanswered.Load() == notWaiting {
		p.unanswered.CompareAndSwap(notWaiting, now)
	}
}

// heard notes that p answered (a WireGuard packet or an authenticated
// disco message from it).
func (p *peer) heard() {
	if p.unanswered.Load() != notWaiting {
		p.unanswered.Store(notWaiting)
	}
}

// waiting returns how long the oldest packet sent to p since it was last
// heard from has waited, or 0.
func (p *peer) waiting(now int64) time.Duration {
	u := p.unanswered.Load()
	if u == notWaiting || now < u {
		return 0
	}
	return time.Duration(now - u)
}

// Unanswered returns how long packets sent to the peer with node key k
// have gone without anything coming back from it: 0 when the peer
// answered since the last packet sent to it (or is unknown). A healthy
// peer on a direct path answers within probeAfter plus a round trip even
// when the traffic to it is one-way (a heartbeat ping goes out of turn);
// through a relay only the traffic itself and WireGuard's keep-alives
// answer, so callers add a handshake of their own as a probe.
func (c *Conn) Unanswered(k key.NodePublic) time.Duration {
	p := c.peer(k)
	if p == nil {
		return 0
	}
	return p.waiting(c.now())
}

// ResetUnanswered forgets what packets to the peer with node key k wait
// for: the next packet sent starts a new wait. (A router that just became
// a prefix's carrier is judged by the packets sent to it in that role.)
func (c *Conn) ResetUnanswered(k key.NodePublic) {
	if p := c.peer(k); p != nil {
		p.unanswered.Store(notWaiting)
	}
}
