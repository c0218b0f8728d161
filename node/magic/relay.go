package magic

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmesh/warren/derp"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/disco"
	"github.com/warrenmesh/warren/node/netcheck"
)

// Relay connection tuning.
const (
	relayQueue      = 512              // packets waiting for a relay connection
	relayDiscoQueue = 16               // disco messages waiting for a relay connection; head-drop
	relayIdle       = 60 * time.Second // a non-home relay unused this long is closed
	failAfter       = 3                // failed dials before the home region is given up
	regionPenalty   = 30 * time.Second // a failed region is avoided this long
	switchThreshold = 2                // a region must be this many times faster to replace a working home
)

// relaySet owns the connections to relay regions.
type relaySet struct {
	c *Conn

	mu     sync.Mutex
	m      *wire.DERPMap
	home   int
	conns  map[int]*relayConn
	failed map[int]time.Time // region -> avoid until
	lat    map[int]time.Duration
}

// relayConn is the connection to one region: a queue of packets to send
// and a goroutine that dials, sends and receives, redialing on failure.
// Disco messages have a queue of their own that is sent first and drops
// its oldest message when full, so that under congestion the ping or
// call-me-maybe that may move traffic off the relay is not the one lost.
type relayConn struct {
	set      *relaySet
	region   wire.DERPRegion
	out      chan outPacket // WireGuard packets; tail-drop
	disco    chan outPacket // disco messages; head-drop, sent first
	ctx      context.Context
	cancel   context.CancelFunc
	lastUsed atomic.Int64
	up       atomic.Bool
}

// outPacket is a packet for a peer through a relay.
type outPacket struct {
	dst  key.NodePublic
	data []byte
}

func (s *relaySet) init(c *Conn) {
	s.c = c
	s.conns = map[int]*relayConn{}
	s.failed = map[int]time.Time{}
}

// setMap replaces the DERP map, closing connections to regions that left
// it; it reports whether the map changed.
func (s *relaySet) setMap(m *wire.DERPMap) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if mapsEqual(s.m, m) {
		return false
	}
	s.m = m
	for id, rc := range s.conns {
		if r := m.Region(id); r == nil || r.URL != rc.region.URL {
			rc.cancel()
			delete(s.conns, id)
		}
	}
	if m.Region(s.home) == nil {
		s.home = 0
	}
	return true
}

func mapsEqual(a, b *wire.DERPMap) bool {
	if a == nil || b == nil {
		return a == b
	}
	return slices.EqualFunc(a.Regions, b.Regions, func(x, y wire.DERPRegion) bool {
		return x.ID == y.ID && x.Code == y.Code && x.URL == y.URL && slices.Equal(x.STUN, y.STUN)
	})
}

func (s *relaySet) derpMap() *wire.DERPMap {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m
}

func (s *relaySet) homeRegion() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.home
}

// chooseHome picks the home region: the measured fastest one that has not
// failed recently. A working home is kept unless another region is much
// faster, so that homes do not flap. rep may be nil (no measurement).
func (s *relaySet) chooseHome(rep *netcheck.Report) {
	s.mu.Lock()
	if rep != nil {
		s.lat = rep.RegionLatency
	}
	old := s.home
	s.home = s.pickLocked(old)
	home, changed := s.home, s.home != old
	s.mu.Unlock()
	if changed {
		s.c.log.Info("home relay region", "region", home, "was", old)
		s.connect(home)
	} else if home != 0 {
		s.connect(home)
	}
}

// pickLocked returns the best region given the current home.
func (s *relaySet) pickLocked(current int) int {
	if s.m == nil || len(s.m.Regions) == 0 {
		return 0
	}
	now := time.Now()
	usable := func(id int) bool { return s.m.Region(id) != nil && now.After(s.failed[id]) }
	best, bestLat := 0, time.Duration(0)
	for _, r := range s.m.Regions {
		l, ok := s.lat[r.ID]
		if !ok || !usable(r.ID) {
			continue
		}
		if best == 0 || l < bestLat {
			best, bestLat = r.ID, l
		}
	}
	if current != 0 && usable(current) {
		cur, ok := s.lat[current]
		if best == 0 || !ok || cur <= bestLat*switchThreshold {
			return current
		}
	}
	if best != 0 {
		return best
	}
	// Nothing measured: the first usable region in map order.
	for _, r := range s.m.Regions {
		if usable(r.ID) {
			return r.ID
		}
	}
	return s.m.Regions[0].ID
}

// regionFor returns the region used to reach p: its home, or ours when
// it has none.
func (s *relaySet) regionFor(p *peer) *wire.DERPRegion {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := int(p.home.Load())
	if s.m.Region(id) == nil {
		id = s.home
	}
	return s.m.Region(id)
}

// connFor returns the connection to the region serving p, dialing it if
// needed; nil when there is no region.
func (s *relaySet) connFor(p *peer) *relayConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := int(p.home.Load())
	if s.m.Region(id) == nil {
		id = s.home
	}
	return s.connLocked(id)
}

// connect makes sure the region's connection exists.
func (s *relaySet) connect(id int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.connLocked(id)
}

func (s *relaySet) connLocked(id int) *relayConn {
	if rc := s.conns[id]; rc != nil {
		return rc
	}
	r := s.m.Region(id)
	if r == nil || s.c.ctx.Err() != nil {
		return nil
	}
	ctx, cancel := context.WithCancel(s.c.ctx)
	rc := &relayConn{set: s, region: *r, out: make(chan outPacket, relayQueue),
		disco: make(chan outPacket, relayDiscoQueue), ctx: ctx, cancel: cancel}
	rc.lastUsed.Store(s.c.now())
	s.conns[id] = rc
	s.c.wg.Add(1)
	go rc.run()
	return rc
}

// send queues WireGuard packets for p through its relay region. Packets
// are copied (WireGuard reuses its buffers); when the queue is full they
// are dropped, as a congested link would.
func (s *relaySet) send(p *peer, bufs [][]byte) error {
	rc := s.connFor(p)
	if rc == nil {
		return errNoPath
	}
	for _, b := range bufs {
		rc.enqueue(p.ep.Key, slices.Clone(b))
	}
	return nil
}

// sendOne queues one packet (a sealed disco message) for p.
func (s *relaySet) sendOne(p *peer, pkt []byte) {
	if rc := s.connFor(p); rc != nil {
		rc.enqueueDisco(p.ep.Key, pkt)
	}
}

// enqueueDisco queues a disco message, dropping the oldest queued one if
// the disco queue is full.
func (rc *relayConn) enqueueDisco(dst key.NodePublic, data []byte) {
	rc.lastUsed.Store(rc.set.c.now())
	op := outPacket{dst: dst, data: data}
	for range 4 { // bounded: other senders may refill the queue between tries
		select {
		case rc.disco <- op:
			return
		default:
		}
		select {
		case <-rc.disco:
		default:
		}
	}
}

// nextOut returns a queued packet without waiting, disco first.
func (rc *relayConn) nextOut() (outPacket, bool) {
	select {
	case pkt := <-rc.disco:
		return pkt, true
	default:
	}
	select {
	case pkt := <-rc.out:
		return pkt, true
	default:
	}
	return outPacket{}, false
}

func (rc *relayConn) enqueue(dst key.NodePublic, data []byte) {
	rc.lastUsed.Store(rc.set.c.now())
	select {
	case rc.out <- outPacket{dst: dst, data: data}:
	default:
	}
}

// closeAll ends every relay connection.
func (s *relaySet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, rc := range s.conns {
		rc.cancel()
		delete(s.conns, id)
	}
}

// status returns, per region we are connected to, whether it is up.
func (s *relaySet) status() map[int]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int]bool, len(s.conns))
	for id, rc := range s.conns {
		out[id] = rc.up.Load()
	}
	return out
}

// run dials the region, pumps packets both ways, and redials with back-off
// when the connection fails. A home region that fails failAfter dials in a
// row is given up for another; other regions' connections end after as
// many failures, or when idle.
func (rc *relayConn) run() {
	c := rc.set.c
	defer c.wg.Done()
	defer rc.remove()
	log := c.log.With("part", "relay", "region", rc.region.Code)
	failures := 0
	backoff := 250 * time.Millisecond
	for rc.ctx.Err() == nil {
		dctx, cancel := context.WithTimeout(rc.ctx, 5*time.Second)
		cl, err := derp.Dial(dctx, rc.region.URL, c.cfg.NodeKey, derp.ClientOptions{Logger: log, HTTPClient: c.cfg.HTTPClient})
		cancel()
		if err != nil {
			if rc.ctx.Err() != nil {
				return
			}
			failures++
			log.Warn("relay unreachable", "url", rc.region.URL, "err", err, "failures", failures)
			if failures >= failAfter {
				if rc.set.regionFailed(rc.region.ID) {
					return // not home any more; the new home has its own connection
				}
				if !rc.isHome() {
					return
				}
			}
			select {
			case <-rc.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		failures, backoff = 0, 250*time.Millisecond
		log.Info("relay connected", "url", rc.region.URL)
		rc.up.Store(true)
		err = rc.pump(cl)
		rc.up.Store(false)
		cl.Close()
		if rc.ctx.Err() != nil {
			return
		}
		log.Warn("relay connection lost", "err", err)
	}
}

// pump sends queued packets and delivers received ones until the
// connection fails, the region is dropped, or it idles out.
func (rc *relayConn) pump(cl *derp.Client) error {
	c := rc.set.c
	ctx, cancel := context.WithCancel(rc.ctx)
	defer cancel()
	recvErr := make(chan error, 1)
	go func() { recvErr <- rc.receive(ctx, cl) }() // ends when ctx ends or cl closes
	defer func() { cl.Close(); <-recvErr }()
	idle := time.NewTicker(relayIdle / 4)
	defer idle.Stop()
	for ctx.Err() == nil {
		if pkt, ok := rc.nextOut(); ok {
			if err := cl.Send(ctx, pkt.dst, pkt.data); err != nil {
				return err
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-recvErr:
			recvErr <- err // for the deferred wait
			return err
		case pkt := <-rc.disco:
			if err := cl.Send(ctx, pkt.dst, pkt.data); err != nil {
				return err
			}
		case pkt := <-rc.out:
			if err := cl.Send(ctx, pkt.dst, pkt.data); err != nil {
				return err
			}
		case <-idle.C:
			if !rc.isHome() && c.now()-rc.lastUsed.Load() > int64(relayIdle) {
				rc.cancel()
				return nil
			}
		}
	}
	return nil
}

// receive delivers what the relay sends: WireGuard packets to the bind,
// disco messages to the disco handler.
func (rc *relayConn) receive(ctx context.Context, cl *derp.Client) error {
	c := rc.set.c
	for {
		msg, err := cl.Recv(ctx)
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case derp.Packet:
			c.fromRelay(m.Src, m.Data)
		}
	}
}

// fromRelay handles one packet from src delivered by a relay.
func (c *Conn) fromRelay(src key.NodePublic, data []byte) {
	if disco.Looks(data) {
		c.handleRelayDisco(src, data)
		return
	}
	p := c.peer(src)
	if p == nil || !isWireGuard(data) {
		return
	}
	select {
	case c.derpRecv <- relayPacket{from: p, data: data}:
	case <-c.ctx.Done():
	}
}

func (rc *relayConn) isHome() bool {
	rc.set.mu.Lock()
	defer rc.set.mu.Unlock()
	return rc.set.home == rc.region.ID
}

// remove drops rc from the set if it is still the region's connection.
func (rc *relayConn) remove() {
	rc.cancel()
	s := rc.set
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns[rc.region.ID] == rc {
		delete(s.conns, rc.region.ID)
	}
}

// regionFailed marks a region as failing; if it was home, another region
// becomes home (and is announced). It reports whether the home moved.
func (s *relaySet) regionFailed(id int) bool {
	s.mu.Lock()
	s.failed[id] = time.Now().Add(regionPenalty)
	if s.home != id {
		s.mu.Unlock()
		return false
	}
	next := s.pickLocked(0)
	if next == id || next == 0 {
		s.mu.Unlock()
		return false // nowhere else to go; keep trying
	}
	s.home = next
	s.mu.Unlock()
	s.c.log.Warn("home relay region failed; moving", "from", id, "to", next)
	s.connect(next)
	s.c.readvertise(nil)
	return true
}
