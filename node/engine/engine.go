// Package engine is the node's data plane: a wireguard-go device whose
// peers come from the netmap, a userspace TCP/IP stack (gVisor netstack)
// that local apps reach through the engine's Dial and Listen (or, in
// kernel TUN mode, a TUN device on Linux, a utun on macOS or a Wintun
// adapter on Windows, with the host's own stack), Warren's
// Bind choosing each peer's path, and the packet filter every packet from
// a peer passes before it reaches the stack.
//
// The node's private key is handed to WireGuard and nowhere else: the
// engine never logs it, never returns it, and configures peers only from
// public keys. Netmap updates are applied as diffs, so existing sessions
// keep running. In kernel TUN mode it changes nothing on the host but its
// own device, the node's addresses on it and the routes for the mesh
// ranges, and it never listens on the unspecified address.
package engine

import (
	"bufio"
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/filter"
	"github.com/warrenmesh/warren/node/magic"
	"github.com/warrenmesh/warren/node/netcheck"
)

// DefaultMTU leaves room for WireGuard and relay framing inside a 1500-byte
// path.
const DefaultMTU = 1280

// Config configures an Engine.
type Config struct {
	NodeKey key.NodePrivate
	// DiscoKey seals NAT-traversal messages; zero means a fresh one (peers
	// then cannot reach this node directly until the coordinator learns it).
	DiscoKey key.DiscoPrivate
	// Addresses are the node's mesh addresses (from its netmap).
	Addresses []netip.Prefix
	// ListenPort is the UDP port for WireGuard; 0 picks one.
	ListenPort uint16
	MTU        int
	// TUN names a kernel TUN device to use instead of the userspace stack
	// (needs root, or an administrator on Windows); empty means userspace.
	// On Linux it is the device's name; on macOS the kernel names every
	// TUN device "utunN", so any name other than "utunN" means "the first
	// free utunN" (see TUNName); on Windows it names the Wintun adapter.
	TUN string
	// UAPIName, when set, exposes the device on WireGuard's standard
	// UAPI socket under that name (/var/run/wireguard/NAME.sock, root
	// only; a named pipe on Windows) for wg(8) and wgctrl, and Status
	// reads it back through wgctrl; UAPIAuto means the TUN device's name
	// in TUN mode and none in userspace mode. Failing to open it is
	// logged, not fatal: the data plane runs without it.
	UAPIName string
	// Router makes the node forward what peers send to the routes it
	// serves. In userspace mode connections to the routes it serves
	// (SetServedRoutes) are terminated in the netstack and dialled from
	// the host; in kernel TUN mode (Linux) the kernel forwards: IP
	// forwarding goes on, and mesh sources are masqueraded unless NoSNAT.
	Router bool
	// NoSNAT keeps the mesh source address of packets a kernel TUN-mode
	// router forwards (the routed network then needs a route back to the
	// mesh ranges through the router).
	NoSNAT bool
	// KeepOut returns addresses the kernel routes for peers' subnet routes
	// must never cover (the coordinator's); the host's own addresses and
	// relays given by IP are kept out anyway. Nil means none.
	KeepOut func() []netip.Addr
	// ServiceAddrs are further local addresses the kernel TUN device gets
	// (MagicDNS's 100.100.100.100 and fd7a:115c:a1e0::53), so local apps
	// reach services bound to them over the host's loopback path; they
	// are not the node's mesh addresses. Userspace mode ignores them.
	ServiceAddrs []netip.Addr
	// LocalEndpoints returns the host's own candidate addresses for the UDP
	// port; OnEndpoints receives what to advertise (those plus the
	// STUN-learned endpoint) and the home relay region whenever they change.
	LocalEndpoints   func(port uint16) []netip.AddrPort
	OnEndpoints      func(endpoints []netip.AddrPort, homeRegion int)
	EndpointInterval time.Duration
	// RelayOnly sends everything through relays (no direct paths).
	RelayOnly bool
	// UDP is the socket bind for direct paths (nil: wireguard-go's
	// StdNetBind; see magic.Config.UDP).
	UDP conn.Bind
	// FlowSink, if set, receives the flow records of the traffic this
	// node's filter decided (accepted flows, periodic updates of long
	// ones, aggregated denies), in batches, from one engine goroutine; it
	// must not block for long. nil: flows are not recorded.
	FlowSink func([]wire.FlowRecord)
	// FlowInterval is how often the records due are collected and handed
	// to FlowSink (default 5 s); FlowUpdate how often a long flow is
	// reported while open (default 60 s). See flows.go.
	FlowInterval time.Duration
	FlowUpdate   time.Duration
	Logger       *slog.Logger
}

// netDevice is what WireGuard reads plaintext packets from and writes them
// to, and what local code dials and listens through: the userspace stack,
// or a kernel TUN device with the host's stack.
type netDevice interface {
	tun.Device
	DialContext(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error)
	ListenTCP(port uint16) (net.Listener, error)
}

// Engine is a running data plane.
type Engine struct {
	log    *slog.Logger
	magic  *magic.Conn
	tun    *filteredTUN
	net    netDevice
	dev    *device.Device
	filter *filter.Filter
	flows  *flowLog // nil: no flow logs (flows.go)
	addrs  []netip.Prefix
	port   uint16
	uapi   *uapiServer // nil: no UAPI socket

	mu     sync.Mutex
	peers  map[key.NodePublic]wire.Node
	routes map[netip.Prefix]key.NodePublic // subnet and exit routes by carrying peer (assignRoutes, withExit)
	// demoted: routers that stopped answering, and when (failover.go).
	demoted map[key.NodePublic]time.Time
	exit    key.NodePublic // the chosen exit node (SetExitNode); zero: none
	// exitRouted is the exit-node policy routing installed (TUN mode).
	exitRouted exitState

	cancel context.CancelFunc // ends watchRouters
	wg     sync.WaitGroup

	served *servedRoutes // what this node forwards for peers (SetServedRoutes)

	keepOut   func() []netip.Addr
	router    *kernelRouter // kernel TUN-mode forwarding; nil if none
	derpAddrs []netip.Addr  // relays given by IP (SetDERPMap), under mu
	installed []tunRoute    // kernel routes for peers' subnet routes, under mu
	skipped   string        // the last skipped routes, to warn once per change
}

// New starts a data plane with no peers and a deny-all filter.
func New(cfg Config) (*Engine, error) {
	if cfg.NodeKey.IsZero() {
		return nil, errors.New("engine: node key required")
	}
	if len(cfg.Addresses) == 0 {
		return nil, errors.New("engine: at least one mesh address required")
	}
	if cfg.MTU <= 0 {
		cfg.MTU = DefaultMTU
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var ndev netDevice
	var err error
	served := &servedRoutes{}
	if cfg.TUN != "" {
		ndev, err = openKernelTUN(cfg)
	} else {
		ndev, err = openUserspace(cfg, served)
	}
	if err != nil {
		return nil, err
	}
	if cfg.DiscoKey.IsZero() {
		cfg.DiscoKey = key.NewDisco()
	}
	var hs handshaker
	var relayClient *http.Client // TUN mode: relay connections keep out of the exit-node table (exitroute.go)
	if cfg.TUN != "" {
		relayClient = MarkedHTTPClient(10 * time.Second)
	}
	mc, err := magic.New(magic.Config{NodeKey: cfg.NodeKey, DiscoKey: cfg.DiscoKey,
		LocalEndpoints: cfg.LocalEndpoints, OnChange: cfg.OnEndpoints, EndpointInterval: cfg.EndpointInterval,
		RelayOnly: cfg.RelayOnly, UDP: cfg.UDP, OnStaleSession: hs.handshake, HTTPClient: relayClient, Logger: cfg.Logger.With("part", "magic")})
	if err != nil {
		ndev.Close()
		return nil, err
	}
	flt, fl := newFlowFilter(cfg)
	e := &Engine{log: cfg.Logger, magic: mc, net: ndev, filter: flt, flows: fl,
		addrs: slices.Clone(cfg.Addresses), peers: make(map[key.NodePublic]wire.Node), served: served, keepOut: cfg.KeepOut,
		demoted: make(map[key.NodePublic]time.Time)}
	e.tun = &filteredTUN{Device: ndev, filter: e.filter, log: cfg.Logger}
	wlog := cfg.Logger.With("part", "wireguard")
	e.dev = device.NewDevice(e.tun, mc.Bind(), &device.Logger{
		Verbosef: func(format string, args ...any) { wlog.Debug(fmt.Sprintf(format, args...)) },
		Errorf:   func(format string, args ...any) { wlog.Warn(fmt.Sprintf(format, args...)) },
	})
	hs.dev.Store(e.dev)
	raw := cfg.NodeKey.Raw()
	if err := e.dev.IpcSet(fmt.Sprintf("private_key=%s\nlisten_port=%d\n", hex.EncodeToString(raw[:]), cfg.ListenPort)); err != nil {
		e.dev.Close()
		mc.Close()
		return nil, fmt.Errorf("engine: configure device: %w", err)
	}
	if err := e.dev.Up(); err != nil {
		e.dev.Close()
		mc.Close()
		return nil, fmt.Errorf("engine: bring device up: %w", err)
	}
	if cfg.TUN != "" {
		// The WireGuard, disco and STUN socket keeps out of the exit-node
		// table (exitroute.go).
		if err := e.dev.IpcSet(fmt.Sprintf("fwmark=%d\n", exitMark)); err != nil {
			e.log.Warn("cannot mark the WireGuard socket: an exit node cannot be used", "err", err)
		}
		// Exit-node routing left by a run that crashed goes now.
		if err := exitRouting(e.TUNName(), nil, false, false); err != nil {
			e.log.Warn("exit node: remove leftover routing", "err", err)
		}
	}
	port, err := e.listenPort()
	if err != nil {
		e.dev.Close()
		mc.Close()
		return nil, err
	}
	e.port = port
	if cfg.TUN != "" && cfg.Router {
		e.router, err = startKernelRouter(e.TUNName(), !cfg.NoSNAT, cfg.Logger)
		if errors.Is(err, errRouterUnsupported) {
			e.log.Warn("this node serves routes, but peers cannot use them", "err", err)
		} else if err != nil {
			e.dev.Close()
			mc.Close()
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.wg.Add(1)
	go e.watchRouters(ctx, mc, hs.handshake)
	if fl != nil {
		e.wg.Add(1)
		go e.runFlows(ctx, fl)
	}
	if cfg.UAPIName == UAPIAuto {
		cfg.UAPIName = e.TUNName()
	}
	if cfg.UAPIName != "" {
		if e.uapi, err = serveUAPI(cfg.UAPIName, e.dev.IpcHandle); err != nil {
			e.log.Warn("wg and wgctrl cannot see this device", "err", err)
		}
	}
	return e, nil
}

// Port returns the UDP port WireGuard listens on.
func (e *Engine) Port() uint16 { return e.port }

// Addresses returns the node's mesh addresses.
func (e *Engine) Addresses() []netip.Prefix { return slices.Clone(e.addrs) }

// TUNName is the kernel TUN device's name as the OS gave it (on macOS a
// "utunN" whatever Config.TUN said), or "" in userspace mode. It is also the
// interface to configure DNS on.
func (e *Engine) TUNName() string {
	if d, ok := e.net.(interface{ tunName() string }); ok {
		return d.tunName()
	}
	return ""
}

// Close stops the device, the stack and path selection.
func (e *Engine) Close() error {
	e.cancel()
	e.wg.Wait()
	e.closeExitRouting()
	if e.uapi != nil {
		_ = e.uapi.Close()
	}
	e.dev.Close()
	err := e.magic.Close()
	if e.router != nil {
		err = errors.Join(err, e.router.Close())
	}
	return err
}

// SetDERPMap gives path selection the relay regions.
func (e *Engine) SetDERPMap(m *wire.DERPMap) {
	e.mu.Lock()
	e.derpAddrs = derpAddrs(m)
	e.mu.Unlock()
	e.magic.SetDERPMap(m)
}

// Netcheck measures the network over the WireGuard socket.
func (e *Engine) Netcheck(ctx context.Context) (*netcheck.Report, error) {
	return e.magic.Netcheck(ctx)
}

// LastNetcheck returns the last background measurement, or nil.
func (e *Engine) LastNetcheck() *netcheck.Report { return e.magic.LastReport() }

// HomeRegion returns the home relay region (0 before one is chosen).
func (e *Engine) HomeRegion() int { return e.magic.HomeRegion() }

// PathInfo details how packets to a peer travel now.
func (e *Engine) PathInfo(k key.NodePublic) (magic.PathInfo, bool) { return e.magic.PathInfo(k) }

// SetServedRoutes sets the routes this node serves (its own netmap
// entry's Routes): with Config.Router, what peers send inside them is
// forwarded; anything else never is.
func (e *Engine) SetServedRoutes(rs []netip.Prefix) { e.served.set(rs) }

// SetNetmap makes WireGuard's peers and the filter match the netmap:
// removed peers go, new ones come, changed ones are updated in place.
func (e *Engine) SetNetmap(peers []wire.Node, rules []wire.FilterRule) error {
	e.filter.SetRules(rules)
	e.mu.Lock()
	defer e.mu.Unlock()
	next := make(map[key.NodePublic]wire.Node, len(peers))
	for _, p := range peers {
		if p.NodeKey.IsZero() {
			continue
		}
		next[p.NodeKey] = p
	}
	var uapi strings.Builder
	for k := range e.peers {
		if _, ok := next[k]; !ok {
			fmt.Fprintf(&uapi, "public_key=%s\nremove=true\n", hexKey(k))
		}
	}
	if uapi.Len() > 0 {
		if err := e.dev.IpcSet(uapi.String()); err != nil {
			return fmt.Errorf("engine: apply netmap: %w", err)
		}
	}
	e.liftDemotions(e.peers, next)
	prev := e.peers
	e.peers = next
	return e.applyPeersLocked(prev)
}

// applyLocked makes WireGuard's allowed IPs match the routes assigned
// now (after a demotion). Called with e.mu held.
func (e *Engine) applyLocked() error { return e.applyPeersLocked(e.peers) }

// applyPeersLocked assigns the routes among e.peers and configures the
// peers that are new since prev or whose allowed IPs changed. Called with
// e.mu held.
func (e *Engine) applyPeersLocked(prev map[key.NodePublic]wire.Node) error {
	list := slices.SortedFunc(maps.Values(e.peers), func(a, b wire.Node) int { return cmp.Compare(a.ID, b.ID) })
	assignment := withExit(assignRoutes(list, e.demoted), list, e.exit)
	// Path selection learns the peers before WireGuard does, minus the
	// direct endpoints a subnet route now sends into the tunnel.
	e.magic.SetPeers(dropLoopingEndpoints(list, e.installSubnetRoutes(assignment)))
	var uapi strings.Builder
	for k, p := range e.peers {
		old, had := prev[k]
		allowed := allowedIPs(p, assignment)
		if had && slices.Equal(allowedIPs(old, e.routes), allowed) {
			continue
		}
		fmt.Fprintf(&uapi, "public_key=%s\n", hexKey(k))
		if !had {
			fmt.Fprintf(&uapi, "endpoint=%s\n", k)
		}
		uapi.WriteString("replace_allowed_ips=true\n")
		for _, a := range allowed {
			fmt.Fprintf(&uapi, "allowed_ip=%s\n", a)
		}
	}
	e.resetNewCarriers(e.routes, assignment)
	e.routes = assignment
	if uapi.Len() == 0 {
		return nil
	}
	if err := e.dev.IpcSet(uapi.String()); err != nil {
		return fmt.Errorf("engine: apply netmap: %w", err)
	}
	return nil
}

// handshaker starts WireGuard handshakes for path selection: a peer that
// sends data on a session from before this node started (a restart with
// the same keys) gets a new one at once instead of after WireGuard's
// timeouts.
type handshaker struct {
	dev atomic.Pointer[device.Device] // set once the device exists
}

// handshake sends a handshake initiation to the peer (WireGuard itself
// sends at most one every 5 s and retries lost ones).
func (h *handshaker) handshake(k key.NodePublic) {
	dev := h.dev.Load()
	if dev == nil {
		return
	}
	if p := dev.LookupPeer(device.NoisePublicKey(k.Raw())); p != nil {
		_ = p.SendHandshakeInitiation(false)
	}
}

func hexKey(k key.NodePublic) string {
	raw := k.Raw()
	return hex.EncodeToString(raw[:])
}

// DialContext dials a mesh address through the userspace stack. network is
// "tcp", "tcp4", "tcp6", "udp", "udp4" or "udp6".
func (e *Engine) DialContext(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error) {
	return e.net.DialContext(ctx, network, addr)
}

// ListenTCP listens on the node's mesh address (the first of the family of
// addr, or all when addr is unspecified) in the userspace stack.
func (e *Engine) ListenTCP(port uint16) (net.Listener, error) {
	return e.net.ListenTCP(port)
}

// PeerStatus is WireGuard's view of one peer.
type PeerStatus struct {
	NodeKey       key.NodePublic
	Path          string
	LastHandshake time.Time
	RxBytes       uint64
	TxBytes       uint64
}

// Status returns WireGuard's view of every peer: through wgctrl on the
// UAPI socket when the device has one, else from the device directly.
func (e *Engine) Status() ([]PeerStatus, error) {
	if e.uapi != nil {
		out, err := wgctrlStatus(e.uapi.name)
		if err == nil {
			for i := range out {
				out[i].Path = e.magic.Path(out[i].NodeKey)
			}
			return out, nil
		}
		e.log.Warn("read the device through its UAPI socket", "err", err)
	}
	text, err := e.dev.IpcGet()
	if err != nil {
		return nil, fmt.Errorf("engine: read device state: %w", err)
	}
	var out []PeerStatus
	var cur *PeerStatus
	var sec int64
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "public_key":
			b, err := hex.DecodeString(v)
			if err != nil {
				continue
			}
			pk, err := key.PublicFromSlice[key.NodeKind](b)
			if err != nil {
				continue
			}
			out = append(out, PeerStatus{NodeKey: pk, Path: e.magic.Path(pk)})
			cur = &out[len(out)-1]
		case "last_handshake_time_sec":
			sec, _ = strconv.ParseInt(v, 10, 64)
		case "last_handshake_time_nsec":
			nsec, _ := strconv.ParseInt(v, 10, 64)
			if cur != nil && (sec != 0 || nsec != 0) {
				cur.LastHandshake = time.Unix(sec, nsec)
			}
		case "rx_bytes":
			if cur != nil {
				cur.RxBytes, _ = strconv.ParseUint(v, 10, 64)
			}
		case "tx_bytes":
			if cur != nil {
				cur.TxBytes, _ = strconv.ParseUint(v, 10, 64)
			}
		}
	}
	return out, nil
}

// listenPort is the device's UDP port; 0 when the bind has no socket
// (the OS gave none: the node runs on relays alone, see magic.Bind.Open),
// which wireguard-go reports by leaving listen_port out.
func (e *Engine) listenPort() (uint16, error) {
	text, err := e.dev.IpcGet()
	if err != nil {
		return 0, fmt.Errorf("engine: read listen port: %w", err)
	}
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, "listen_port="); ok {
			p, err := strconv.ParseUint(v, 10, 16)
			return uint16(p), err
		}
	}
	return 0, nil
}

// filteredTUN passes every packet WireGuard delivers (arriving from a peer)
// through the filter before the stack sees it, and tells the filter about
// every packet the stack sends, for connection tracking.
type filteredTUN struct {
	tun.Device
	filter *filter.Filter
	log    *slog.Logger
}

// Write delivers packets from peers to the stack, dropping what the filter
// refuses.
func (t *filteredTUN) Write(bufs [][]byte, offset int) (int, error) {
	kept := bufs // allocate only when something is dropped
	for i, b := range bufs {
		v, _ := t.filter.Inbound(b[offset:])
		switch {
		case v == filter.Accept && len(kept) == len(bufs):
		case v == filter.Accept:
			kept = append(kept, b)
		case len(kept) == len(bufs):
			kept = append(make([][]byte, 0, len(bufs)), bufs[:i]...)
		}
	}
	if len(kept) == 0 {
		return len(bufs), nil
	}
	if _, err := t.Device.Write(kept, offset); err != nil {
		return 0, err
	}
	return len(bufs), nil
}

// Read takes packets from the stack for WireGuard to send.
func (t *filteredTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := t.Device.Read(bufs, sizes, offset)
	for i := 0; i < n; i++ {
		t.filter.Outbound(bufs[i][offset : offset+sizes[i]])
	}
	return n, err
}

// FilterStats returns the inbound filter's counters.
func (e *Engine) FilterStats() filter.Stats { return e.filter.Stats() }

// Path describes how packets to a peer travel now.
func (e *Engine) Path(k key.NodePublic) string { return e.magic.Path(k) }

// pinger is a device that can send ICMP echo requests through the mesh.
type pinger interface {
	Ping(ctx context.Context, addr netip.Addr) (time.Duration, error)
}

// Ping sends one ICMP echo request to a mesh address through WireGuard and
// returns the round-trip time: it proves the tunnel, the peer's filter and
// its stack all work.
func (e *Engine) Ping(ctx context.Context, addr netip.Addr) (time.Duration, error) {
	p, ok := e.net.(pinger)
	if !ok {
		return 0, errors.New("engine: this data plane mode cannot send pings")
	}
	return p.Ping(ctx, addr)
}
