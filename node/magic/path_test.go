package magic

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/disco"
)

// newBareConn returns a Conn whose bind is never opened, for tests that
// drive its handlers directly.
func newBareConn(t *testing.T, cfg Config) *Conn {
	t.Helper()
	cfg.NodeKey, cfg.DiscoKey = key.NewNode(), key.NewDisco()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestPingGetsPong: a valid ping is answered with a pong naming the
// address it came from, and (no direct path being proven yet) with a ping
// back to that address.
func TestPingGetsPong(t *testing.T) {
	t.Parallel()
	h := newHostileSetup(t)
	s := listenUDP(t)
	tx := disco.NewTxID()
	s.send(h.n.addr(), h.ping(tx))
	m, err := s.waitDisco(h.sk, pongTo(tx))
	if err != nil {
		t.Fatal(err)
	}
	if src := m.(*disco.Pong).Src; src != s.addr() {
		t.Errorf("pong says the ping came from %v, want %v", src, s.addr())
	}
	m, err = s.waitDisco(h.sk, func(m disco.Message) bool { _, ok := m.(*disco.Ping); return ok })
	if err != nil {
		t.Fatal(err)
	}
	if nk := m.(*disco.Ping).NodeKey; nk != h.n.nodeK.Public() {
		t.Errorf("ping back names node key %v, want the Conn's %v", nk.ShortString(), h.n.nodeK.Public().ShortString())
	}
}

// TestDirectPath runs two Conns on loopback with each other's endpoints
// and no relay: the first packet goes to the netmap's endpoint, discovery
// proves the direct path both ways, traffic then uses it, and when one
// side goes away the other stops trusting the path within trustDuration.
func TestDirectPath(t *testing.T) {
	t.Parallel()
	a, b := startNode(t, Config{}), startNode(t, Config{})
	a.c.SetPeers([]wire.Node{b.asPeer(0, b.addr())})
	b.c.SetPeers([]wire.Node{a.asPeer(0, a.addr())})
	aKey, bKey := a.nodeK.Public(), b.nodeK.Public()
	if got, want := a.c.Path(bKey), "direct (unproven; no relay)"; got != want {
		t.Errorf("path before any packet: %q, want %q", got, want)
	}
	if got := a.c.Path(key.NewNode().Public()); got != "none" {
		t.Errorf("path to an unknown peer: %q, want none", got)
	}

	first := wgPacket(1, 148, 1)
	if err := a.c.Bind().Send([][]byte{first}, a.endpoint(bKey)); err != nil {
		t.Fatalf("send: %v", err)
	}
	got := b.waitPacket(func(d delivered) bool { return bytes.Equal(d.data, first) })
	if ep, ok := got.ep.(*Endpoint); !ok || ep.Key != aKey {
		t.Errorf("b's WireGuard got the packet from %v, want a's node key", got.ep.DstToString())
	}

	for _, tc := range []struct {
		from *node
		to   key.NodePublic
		want string
	}{{a, bKey, "direct " + b.addr().String()}, {b, aKey, "direct " + a.addr().String()}} {
		poll.UntilTrue(t, wait, "path "+tc.want, func() bool { return tc.from.c.Path(tc.to) == tc.want })
	}
	info, ok := a.c.PathInfo(bKey)
	if !ok || info.Direct != b.addr() || info.RTT <= 0 || info.Relay != "" {
		t.Errorf("PathInfo = %+v, %v; want direct to %v with an RTT", info, ok, b.addr())
	}

	// Traffic now takes the direct path.
	second := wgPacket(4, 64, 2)
	if err := a.c.Bind().Send([][]byte{second}, a.endpoint(bKey)); err != nil {
		t.Fatalf("send: %v", err)
	}
	b.waitPacket(func(d delivered) bool { return bytes.Equal(d.data, second) && d.ep == b.c.peer(aKey).ep })

	// b goes away: its pongs stop, and a stops trusting the path within
	// trustDuration of the last one (less, since a heartbeat renewed it
	// at most heartbeatInterval before).
	b.close()
	start := time.Now()
	poll.UntilTrue(t, trustDuration+wait, "a leaves the direct path", func() bool {
		return !strings.HasPrefix(a.c.Path(bKey), "direct ")
	})
	t.Logf("left the direct path %v after the peer went away", time.Since(start).Round(time.Millisecond))
	if got := a.c.Path(bKey); got != "none" {
		t.Errorf("path without a direct path or relay: %q, want none", got)
	}
}

// TestStale checks when a direct path counts as stale: no pong within a
// heartbeat interval, twice the round trip and half a second of slack.
func TestStale(t *testing.T) {
	const lastPong = int64(100 * time.Second)
	tests := []struct {
		name    string
		noBest  bool
		rtt     time.Duration
		elapsed time.Duration // since the last pong
		want    bool
	}{
		{"no path", true, 0, time.Hour, false},
		{"just ponged", false, 0, 0, false},
		{"one heartbeat", false, 0, heartbeatInterval, false},
		{"at the limit", false, 0, heartbeatInterval + 500*time.Millisecond, false},
		{"past the limit", false, 0, heartbeatInterval + 500*time.Millisecond + 1, true},
		{"slow path, within", false, 100 * time.Millisecond, heartbeatInterval + 650*time.Millisecond, false},
		{"slow path, at the limit", false, 100 * time.Millisecond, heartbeatInterval + 700*time.Millisecond, false},
		{"slow path, past", false, 100 * time.Millisecond, heartbeatInterval + 701*time.Millisecond, true},
		{"trust expired", false, 0, trustDuration, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &peer{}
			if !tt.noBest {
				p.best.Store(&bestAddr{addr: netip.MustParseAddrPort("192.0.2.1:1"), rtt: tt.rtt})
			}
			p.trustUntil.Store(lastPong + int64(trustDuration))
			if got := p.stale(lastPong + int64(tt.elapsed)); got != tt.want {
				t.Errorf("stale = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestTrusted: a direct path carries traffic alone until trustUntil.
func TestTrusted(t *testing.T) {
	p := &peer{}
	if _, ok := p.trusted(0); ok {
		t.Error("trusted without a path")
	}
	p.best.Store(&bestAddr{addr: netip.MustParseAddrPort("192.0.2.1:1")})
	p.trustUntil.Store(10)
	for now, want := range map[int64]bool{0: true, 9: true, 10: false, 11: false} {
		if _, ok := p.trusted(now); ok != want {
			t.Errorf("trusted(%d) = %v, want %v", now, ok, want)
		}
	}
}

// TestDiscoveryInterval checks the back-off between discovery rounds.
func TestDiscoveryInterval(t *testing.T) {
	tests := []struct {
		attempts int
		want     time.Duration
	}{
		{0, time.Second},
		{1, time.Second},
		{2, 2 * time.Second},
		{3, 4 * time.Second},
		{4, 8 * time.Second},
		{5, maxDiscoveryInterval},
		{6, maxDiscoveryInterval},
		{1000, maxDiscoveryInterval},
	}
	for _, tt := range tests {
		p := &peer{attempts: tt.attempts}
		if got := time.Duration(p.discoveryInterval()); got != tt.want {
			t.Errorf("attempts %d: interval %v, want %v", tt.attempts, got, tt.want)
		}
	}
}

// TestOnPong checks which pongs prove a path and when a new path
// replaces the one in use.
func TestOnPong(t *testing.T) {
	c := newBareConn(t, Config{})
	pk := key.NewNode().Public()
	c.SetPeers([]wire.Node{{NodeKey: pk, DiscoKey: key.NewDisco().Public()}})
	p := c.peer(pk)
	A, B := netip.MustParseAddrPort("192.0.2.1:1000"), netip.MustParseAddrPort("192.0.2.2:2000")
	const ms = time.Millisecond
	tests := []struct {
		name     string
		best     netip.AddrPort // zero: no path yet
		bestRTT  time.Duration
		pongAgo  time.Duration // since the best path's last pong
		sentTo   netip.AddrPort
		from     netip.AddrPort
		rtt      time.Duration
		wantBest netip.AddrPort
		renewed  bool // trust renewed
	}{
		{"first pong proves a path", netip.AddrPort{}, 0, 0, A, A, 10 * ms, A, true},
		{"pong from another address than pinged", netip.AddrPort{}, 0, 0, A, B, 10 * ms, netip.AddrPort{}, false},
		{"heartbeat pong renews", A, 10 * ms, time.Second, A, A, 12 * ms, A, true},
		{"much faster alternative replaces", A, 10 * ms, time.Second, B, B, 5 * ms, B, true},
		{"slightly faster alternative does not", A, 10 * ms, time.Second, B, B, 9 * ms, A, false},
		{"slower alternative does not", A, 10 * ms, time.Second, B, B, 50 * ms, A, false},
		{"slower alternative when the path is stale", A, 10 * ms, 3 * time.Second, B, B, 50 * ms, B, true},
		{"slower alternative when trust expired", A, 10 * ms, trustDuration + time.Second, B, B, 50 * ms, B, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := c.now()
			p.best.Store(nil)
			p.trustUntil.Store(0)
			if tt.best.IsValid() {
				ep, err := c.udp.ParseEndpoint(tt.best.String())
				if err != nil {
					t.Fatal(err)
				}
				p.best.Store(&bestAddr{addr: tt.best, ep: ep, rtt: tt.bestRTT})
				p.trustUntil.Store(now - int64(tt.pongAgo) + int64(trustDuration))
			}
			oldTrust := p.trustUntil.Load()
			tx := disco.NewTxID()
			p.mu.Lock()
			p.pending[tx] = sentPing{to: tt.sentTo, at: now - int64(tt.rtt)}
			p.mu.Unlock()

			c.onPong(p, &disco.Pong{TxID: tx}, tt.from)

			var got netip.AddrPort
			if b := p.best.Load(); b != nil {
				got = b.addr
				if b.addr == tt.from && tt.renewed && (b.rtt < tt.rtt || b.rtt > tt.rtt+time.Second) {
					t.Errorf("rtt %v, want about %v", b.rtt, tt.rtt)
				}
			}
			if got != tt.wantBest {
				t.Errorf("best path %v, want %v", got, tt.wantBest)
			}
			if renewed := p.trustUntil.Load() != oldTrust; renewed != tt.renewed {
				t.Errorf("trust renewed = %v, want %v", renewed, tt.renewed)
			}
			p.mu.Lock()
			_, still := p.pending[tx]
			p.mu.Unlock()
			if still {
				t.Error("the answered ping is still pending")
			}
			// The same pong again (a replay) changes nothing.
			trust := p.trustUntil.Load()
			c.onPong(p, &disco.Pong{TxID: tx}, tt.from)
			if p.trustUntil.Load() != trust {
				t.Error("a replayed pong renewed trust")
			}
		})
	}
}

// TestRelayDisco checks disco messages that arrive through a relay: only
// a call-me-maybe from the peer the relay vouches for is acted on (by
// pinging each endpoint it lists); pings and pongs belong on UDP.
func TestRelayDisco(t *testing.T) {
	t.Parallel()
	h := newHostileSetup(t)
	other := key.NewNode() // a second peer, with its own disco key
	otherDisco := key.NewDisco()
	h.n.c.SetPeers([]wire.Node{
		{NodeKey: h.peerNode.Public(), DiscoKey: h.peerDisco.Public()},
		{NodeKey: other.Public(), DiscoKey: otherDisco.Public()},
	})
	peerKey := h.peerNode.Public()
	tests := []struct {
		name   string
		src    key.NodePublic // the relay's word for the sender
		msg    disco.Message
		pinged bool
	}{
		{"call-me-maybe from the peer", peerKey, nil, true},
		{"call-me-maybe under another peer's node key", other.Public(), nil, false},
		{"call-me-maybe from an unknown node", key.NewNode().Public(), nil, false},
		{"ping through the relay", peerKey, &disco.Ping{TxID: disco.NewTxID(), NodeKey: peerKey}, false},
		{"pong through the relay", peerKey, &disco.Pong{TxID: disco.NewTxID()}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spy := listenUDP(t)
			msg := tt.msg
			if msg == nil {
				msg = &disco.CallMeMaybe{Endpoints: []netip.AddrPort{spy.addr(), {}, netip.MustParseAddrPort("0.0.0.0:1")}}
			}
			h.n.c.fromRelay(tt.src, h.sk.Seal(msg))
			// The handler sends synchronously, so a ping is queued by now.
			var pings int
			for _, pkt := range spy.queued() {
				if m, err := h.sk.Open(pkt); err == nil {
					if ping, ok := m.(*disco.Ping); ok && ping.NodeKey == h.n.nodeK.Public() {
						pings++
					}
				}
			}
			if tt.pinged && pings != 1 {
				t.Errorf("%d pings to the listed endpoint, want 1", pings)
			}
			if !tt.pinged && pings != 0 {
				t.Errorf("%d pings to the listed endpoint, want none", pings)
			}
			if l := len(h.learned()); l != 0 {
				t.Errorf("learned %d addresses from a relayed message", l)
			}
		})
	}
}

// TestFromRelay checks what a relay's packets turn into: WireGuard
// packets from a known peer reach WireGuard labelled with its endpoint;
// anything else is dropped.
func TestFromRelay(t *testing.T) {
	t.Parallel()
	h := newHostileSetup(t)
	c, peerKey := h.n.c, h.peerNode.Public()
	c.fromRelay(key.NewNode().Public(), wgPacket(4, 64, 1)) // unknown sender
	c.fromRelay(peerKey, []byte("not wireguard"))
	c.fromRelay(peerKey, nil)
	c.fromRelay(peerKey, wgPacket(0, 64, 2))
	want := wgPacket(4, 64, 3)
	c.fromRelay(peerKey, want)
	// The relay queue is a FIFO: once the last packet is through, the
	// others would have been too.
	d := h.n.waitPacket(func(delivered) bool { return true })
	if !bytes.Equal(d.data, want) || d.ep != h.p.ep {
		t.Errorf("WireGuard got %x… from %v, want the peer's packet from its endpoint", d.data[:8], d.ep.DstToString())
	}
	if got := h.n.packets(); len(got) != 1 {
		t.Errorf("WireGuard got %d packets from the relay, want 1", len(got))
	}
}

// TestPingRateLimit: outside heartbeats and call-me-maybes, an address is
// pinged at most once per pingPerAddr — counted from the last ping, not
// from the Conn's start.
func TestPingRateLimit(t *testing.T) {
	c := newBareConn(t, Config{}) // its clock is near 0: a fresh Conn
	pk := key.NewNode().Public()
	c.SetPeers([]wire.Node{{NodeKey: pk, DiscoKey: key.NewDisco().Public()}})
	p := c.peer(pk)
	addr := netip.MustParseAddrPort("127.0.0.1:9") // the bind is not open: sends fail, pings are still recorded
	pending := func() int { p.mu.Lock(); defer p.mu.Unlock(); return len(p.pending) }
	steps := []struct {
		force bool
		want  int // pings pending after the step
	}{
		{false, 1}, // the first ping goes out, even in the Conn's first pingPerAddr
		{false, 1}, // a second one at once does not
		{true, 2},  // unless forced
		{false, 2},
	}
	for i, s := range steps {
		c.ping(p, addr, s.force)
		if got := pending(); got != s.want {
			t.Fatalf("step %d (force %v): %d pings pending, want %d", i, s.force, got, s.want)
		}
	}
}

// TestLearnBounded: a peer can make the Conn remember at most maxLearned
// addresses; the oldest goes first, but never the direct path in use.
func TestLearnBounded(t *testing.T) {
	c := newBareConn(t, Config{})
	pk := key.NewNode().Public()
	netmapEP := netip.MustParseAddrPort("192.0.2.1:1")
	c.SetPeers([]wire.Node{{NodeKey: pk, DiscoKey: key.NewDisco().Public(), Endpoints: []netip.AddrPort{netmapEP}}})
	p := c.peer(pk)
	addr := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.MustParseAddr("198.51.100.1"), uint16(1000+i))
	}

	if p.learn(netmapEP) {
		t.Error("the netmap's endpoint was learned")
	}
	if !p.learn(addr(0)) || p.learn(addr(0)) {
		t.Error("learn reports a new address wrongly")
	}
	ep, err := c.udp.ParseEndpoint(addr(0).String())
	if err != nil {
		t.Fatal(err)
	}
	p.best.Store(&bestAddr{addr: addr(0), ep: ep}) // the oldest is the path in use
	for i := 1; i <= 3*maxLearned; i++ {
		p.learn(addr(i))
	}
	p.mu.Lock()
	n := len(p.learned)
	_, keptBest := p.learned[addr(0)]
	_, keptNewest := p.learned[addr(3*maxLearned)]
	_, keptOld := p.learned[addr(1)]
	p.mu.Unlock()
	if n != maxLearned || !keptBest || !keptNewest || keptOld {
		t.Errorf("learned %d (want %d); kept the path in use %v (want true), the newest %v (want true), an old one %v (want false)",
			n, maxLearned, keptBest, keptNewest, keptOld)
	}
	idx := c.peers.Load()
	if idx.byAddr[addr(0)] != p || idx.byAddr[netmapEP] != p || idx.byAddr[addr(1)] != nil || len(idx.byAddr) != maxLearned+1 {
		t.Errorf("index maps %d addresses; want the %d learned and the netmap's", len(idx.byAddr), maxLearned)
	}
}

// TestTendActiveOnly: discovery runs only for peers WireGuard sent to
// within activeWindow — not for every peer while the Conn is young.
func TestTendActiveOnly(t *testing.T) {
	c := newBareConn(t, Config{})
	pk := key.NewNode().Public()
	c.SetPeers([]wire.Node{{NodeKey: pk, DiscoKey: key.NewDisco().Public(),
		Endpoints: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:9")}}})
	p := c.peer(pk)
	pending := func() int { p.mu.Lock(); defer p.mu.Unlock(); return len(p.pending) }
	c.tend(p, c.now())
	if n := pending(); n != 0 {
		t.Fatalf("an idle peer was pinged (%d pings pending)", n)
	}
	p.lastSend.Store(c.now()) // what Bind.Send records
	c.tend(p, c.now())
	if n := pending(); n == 0 {
		t.Fatal("an active peer without a direct path was not pinged")
	}
}
