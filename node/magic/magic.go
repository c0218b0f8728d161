// Package magic is the node's path selection. It provides the conn.Bind
// that WireGuard sends through: peers are addressed by node key, and for
// each the Conn picks a path. Traffic starts over the peer's home DERP
// relay at once; meanwhile disco pings (sealed with disco keys) probe the
// peer's endpoints, a call-me-maybe sent through the relay makes the peer
// ping back so both NATs open, and the first ping that comes back proves a
// direct UDP path, which is then used for as long as heartbeat pings keep
// coming back. When one is overdue, packets also go through the relay;
// when they stop, traffic falls back to the relay and discovery starts
// again; a peer whose NAT moved it to a new address is found again by its
// own pings. A peer that sends data on a WireGuard session from before
// this node started (a restart with the same keys) is reported, so that
// the engine starts a new handshake at once.
//
// The Conn also measures the network (STUN over the WireGuard socket, so
// the learned public endpoint is the one peers must use), picks the home
// relay region by latency, moves to another region when the home region
// fails, and reports the endpoints and home region to advertise.
//
// The node's private key is used only to prove possession to relays; the
// Conn never logs or exports it. Relays and the network see only
// WireGuard ciphertext and sealed disco messages.
package magic

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/netcheck"
)

// Timing of path discovery and maintenance.
const (
	// heartbeatInterval is how often an active direct path is pinged.
	heartbeatInterval = 2 * time.Second
	// trustDuration is how long a pong keeps a direct path in use: two
	// heartbeats may be lost before traffic falls back to the relay.
	trustDuration = 5 * time.Second
	// activeWindow: a peer that sent nothing for this long gets no
	// heartbeats (its path is re-proven on the next packet).
	activeWindow = 45 * time.Second
	// maxDiscoveryInterval caps the back-off between discovery rounds for
	// a peer without a direct path.
	maxDiscoveryInterval = 10 * time.Second
	// netcheckInterval is how often the network is measured again (which
	// also refreshes the STUN-learned endpoint).
	netcheckInterval = 30 * time.Second
	// tickInterval is the resolution of the path maintenance loop.
	tickInterval = 250 * time.Millisecond
	// lostPathMemory is how long a direct path that stopped answering
	// still gets copies of relayed packets (it may come back).
	lostPathMemory = 10 * time.Second
	// remeasureInterval limits the extra network checks a failing direct
	// path triggers.
	remeasureInterval = 5 * time.Second
)

// errNoPath is returned by Send when a peer has neither a direct path nor
// a relay region.
var errNoPath = errors.New("magic: no path to peer (no direct path and no relay region)")

// Config configures a Conn.
type Config struct {
	// NodeKey proves this node to relays. Required.
	NodeKey key.NodePrivate
	// DiscoKey seals and opens disco messages. Required.
	DiscoKey key.DiscoPrivate
	// LocalEndpoints returns this host's own candidate addresses for the
	// UDP port (its interface addresses); nil means none.
	LocalEndpoints func(port uint16) []netip.AddrPort
	// OnChange is called, from the Conn's own goroutine, whenever the
	// endpoints or the home region this node should advertise change.
	OnChange func(endpoints []netip.AddrPort, homeRegion int)
	// EndpointInterval is how often LocalEndpoints is asked again
	// (default 30 s).
	EndpointInterval time.Duration
	// HTTPClient dials relays and latency probes (nil: a default client).
	HTTPClient *http.Client
	// RelayOnly disables direct paths: everything goes through relays.
	RelayOnly bool
	// UDP is the socket bind for direct paths (nil: wireguard-go's
	// StdNetBind). When it cannot open at all (any port), the Conn runs
	// on relays alone, as with RelayOnly, and logs a warning.
	UDP conn.Bind
	// OnStaleSession is called, from the Conn's own goroutine, when a peer
	// sends WireGuard data although no handshake with it has passed
	// through this Conn: the peer still holds a session with an earlier
	// run of this node (a restart with the same keys), which this run
	// cannot decrypt. The callback should start a handshake with the peer
	// at once; otherwise the peer notices only when WireGuard's timers
	// give up on the old session, 15 s or more later. It is called at
	// most once a second per peer, and must not block for long.
	OnStaleSession func(k key.NodePublic)
	Logger         *slog.Logger
}

// Conn selects paths to peers. Create it with New, hand Bind() to
// WireGuard, feed it peers and the DERP map, and Close it after the
// WireGuard device.
type Conn struct {
	cfg      Config
	log      *slog.Logger
	udp      conn.Bind
	noUDP    atomic.Bool // the bind's socket could not be opened: relays only
	nodePub  key.NodePublic
	discoPub key.DiscoPublic
	checker  *netcheck.Checker
	start    time.Time // origin of the monotonic clock (see now)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the goroutines Conn started

	mu    sync.Mutex                // serialises writers of peers; guards the fields below
	peers atomic.Pointer[peerIndex] // read without a lock on the packet paths
	port  uint16                    // the UDP port the bind last opened
	gen   *bindGen                  // the open bind's generation, nil when closed

	relays relaySet

	derpRecv chan relayPacket // WireGuard packets from relays, for the receive func
	wake     chan *peer       // peers that need a discovery round now
	stale    chan *peer       // peers that send data on a session this run never made
	changed  chan struct{}    // DERP map, port or region changed: re-measure

	lastRemeasure atomic.Int64 // c.now of the last remeasure request

	lowTTL atomic.Pointer[lowTTL]   // the open bind's socket for openers; nil when unavailable
	timers map[*time.Timer]struct{} // pending functions of after; guarded by mu

	adSend    sync.Mutex // serialises readvertise, OnChange included
	adMu      sync.Mutex // guards the advertised state
	report    *netcheck.Report
	advertise []netip.AddrPort
	adHome    int
}

// bindGen is one Open..Close cycle of the bind.
type bindGen struct {
	closed chan struct{}
}

// relayPacket is a WireGuard packet that arrived through a relay.
type relayPacket struct {
	from *peer
	data []byte
}

// New returns a Conn with no peers; it starts its maintenance goroutines.
func New(cfg Config) (*Conn, error) {
	if cfg.NodeKey.IsZero() || cfg.DiscoKey.IsZero() {
		return nil, errors.New("magic: node key and disco key required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.EndpointInterval <= 0 {
		cfg.EndpointInterval = 30 * time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.UDP == nil {
		cfg.UDP = conn.NewStdNetBind()
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Conn{
		cfg: cfg, log: cfg.Logger, udp: cfg.UDP,
		nodePub: cfg.NodeKey.Public(), discoPub: cfg.DiscoKey.Public(), start: time.Now(),
		ctx: ctx, cancel: cancel,
		derpRecv: make(chan relayPacket, 256),
		wake:     make(chan *peer, 64),
		stale:    make(chan *peer, 64),
		changed:  make(chan struct{}, 1),
		timers:   make(map[*time.Timer]struct{}),
	}
	c.peers.Store(&peerIndex{})
	c.lastRemeasure.Store(-int64(time.Hour))
	c.relays.init(c)
	c.checker = netcheck.NewChecker(netcheck.Config{Conn: stunConn{c}, HTTPClient: cfg.HTTPClient,
		Logger: cfg.Logger.With("part", "netcheck")})
	c.wg.Add(2)
	go c.maintain()
	go c.measureLoop()
	return c, nil
}

// relayOnly reports whether direct paths are off: by configuration, or
// because no UDP socket could be opened.
func (c *Conn) relayOnly() bool { return c.cfg.RelayOnly || c.noUDP.Load() }

// now is a monotonic clock in nanoseconds, cheap to store in atomics.
func (c *Conn) now() int64 { return int64(time.Since(c.start)) }

// Close stops every goroutine the Conn started and closes its relay
// connections. Close the WireGuard device (which closes the bind) first.
func (c *Conn) Close() error {
	c.cancel()
	c.stopTimers()
	c.relays.closeAll()
	c.wg.Wait()
	return nil
}

// SetDERPMap replaces the relay regions. The home region is chosen again
// if it left the map.
func (c *Conn) SetDERPMap(m *wire.DERPMap) {
	if c.relays.setMap(m) {
		c.poke()
	}
}

// poke asks the measuring loop to measure now.
func (c *Conn) poke() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// Netcheck measures the network now, over the WireGuard socket.
func (c *Conn) Netcheck(ctx context.Context) (*netcheck.Report, error) {
	m := c.relays.derpMap()
	if m == nil || len(m.Regions) == 0 {
		return nil, errors.New("magic: the coordinator lists no relay regions; nothing to measure against")
	}
	return c.checker.Run(ctx, m)
}

// LastReport returns the last network measurement, or nil.
func (c *Conn) LastReport() *netcheck.Report {
	c.adMu.Lock()
	defer c.adMu.Unlock()
	return c.report
}

// HomeRegion returns the home relay region (0 before one is chosen).
func (c *Conn) HomeRegion() int { return c.relays.homeRegion() }

// measureLoop measures the network when the bind opens, the DERP map
// changes, and every netcheckInterval; it chooses the home region and
// reports what to advertise.
func (c *Conn) measureLoop() {
	defer c.wg.Done()
	measure := time.NewTimer(time.Hour)
	measure.Stop()
	local := time.NewTicker(c.cfg.EndpointInterval)
	defer local.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.changed:
			c.measure()
			measure.Reset(netcheckInterval)
		case <-measure.C:
			c.measure()
			measure.Reset(netcheckInterval)
		case <-local.C:
			c.readvertise(nil)
		}
	}
}

// measure runs a netcheck (when there is a map and an open socket), picks
// the home region, and re-advertises.
func (c *Conn) measure() {
	m := c.relays.derpMap()
	c.mu.Lock()
	open := c.gen != nil
	c.mu.Unlock()
	var rep *netcheck.Report
	if m != nil && len(m.Regions) > 0 && open {
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		r, err := c.checker.Run(ctx, m)
		cancel()
		if err != nil {
			if c.ctx.Err() != nil {
				return
			}
			c.log.Warn("network check failed", "err", err)
		} else {
			rep = r
			c.log.Debug("network check", "udp", r.UDP, "public", r.PublicEndpoint, "preferred", r.PreferredRegion)
		}
	}
	c.relays.chooseHome(rep)
	c.readvertise(rep)
}

// readvertise recomputes the endpoints to advertise (local addresses and
// the STUN-learned one) and calls OnChange when they or the home region
// changed. rep, when non-nil, is a fresh measurement.
func (c *Conn) readvertise(rep *netcheck.Report) {
	// One at a time, through OnChange too, so that the coordinator hears
	// the changes in the order they happened.
	c.adSend.Lock()
	defer c.adSend.Unlock()
	c.mu.Lock()
	port := c.port
	c.mu.Unlock()
	var eps []netip.AddrPort
	if c.cfg.LocalEndpoints != nil && port != 0 {
		eps = append(eps, c.cfg.LocalEndpoints(port)...)
	}
	c.adMu.Lock()
	if rep != nil {
		c.report = rep
	}
	if c.report != nil && c.report.PublicEndpoint.IsValid() && !slices.Contains(eps, c.report.PublicEndpoint) {
		eps = append(eps, c.report.PublicEndpoint)
	}
	home := c.relays.homeRegion()
	same := slices.Equal(eps, c.advertise) && home == c.adHome
	c.advertise, c.adHome = eps, home
	c.adMu.Unlock()
	if same || c.cfg.OnChange == nil {
		return
	}
	c.log.Info("advertising endpoints", "endpoints", eps, "home_region", home)
	c.cfg.OnChange(slices.Clone(eps), home)
}

// Advertised returns the endpoints and home region last advertised.
func (c *Conn) Advertised() ([]netip.AddrPort, int) {
	c.adMu.Lock()
	defer c.adMu.Unlock()
	return slices.Clone(c.advertise), c.adHome
}

// stunConn lets netcheck send STUN from the WireGuard socket.
type stunConn struct{ c *Conn }

// WriteToUDPAddrPort implements netcheck.PacketConn.
func (s stunConn) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	if err := s.c.sendUDP(b, addr); err != nil {
		return 0, err
	}
	return len(b), nil
}

// sendUDP sends one packet from the WireGuard socket to addr.
func (c *Conn) sendUDP(b []byte, addr netip.AddrPort) error {
	ep, err := c.udp.ParseEndpoint(addr.String())
	if err != nil {
		return err
	}
	return c.udp.Send([][]byte{b}, ep)
}
