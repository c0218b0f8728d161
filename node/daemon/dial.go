package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/wire"

	"github.com/warrenmesh/warren/node/controlclient"
	"github.com/warrenmesh/warren/node/engine"
	"github.com/warrenmesh/warren/node/localapi"
	"github.com/warrenmesh/warren/node/netcheck"
	"github.com/warrenmesh/warren/node/proxy"
)

// errNotRunning is returned when there is no netmap or data plane.
var errNotRunning = errors.New("warren is not running: run warren up")

// running returns the current netmap and engine, or errNotRunning.
func (d *Daemon) running() (*session, *controlclient.Netmap, error) {
	s := d.current()
	if s == nil || s.client == nil {
		return nil, nil, errNotRunning
	}
	nm := s.netmap()
	if nm == nil || s.engine() == nil {
		return nil, nil, errNotRunning
	}
	return s, nm, nil
}

// Resolve implements localapi.Backend and the proxy's resolver: a mesh
// address stands for itself; a name is a node's DNS label, alone or under
// the mesh domain ("db" or "db.warren.internal").
func (d *Daemon) Resolve(ctx context.Context, name string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(name); err == nil {
		a = a.Unmap()
		if !isMeshAddr(a) {
			if s, nm, err := d.running(); err == nil {
				if _, ok := s.carrier(nm, a); ok {
					return a, nil
				}
			}
			return netip.Addr{}, fmt.Errorf("%w: %s is not a Warren address (this node reaches the mesh, 100.64.0.0/10 and fd7a:115c:a1e0::/48, the subnet routes its peers serve, and everything else through an exit node chosen with warren up --exit-node)", proxy.ErrUnknownHost, a)
		}
		return a, nil
	}
	s, nm, err := d.running()
	if err != nil {
		return netip.Addr{}, err
	}
	label := trimDomain(name, nm.Domain)
	for _, n := range append([]wire.Node{nm.Self}, nm.Peers...) {
		if n.Name == label {
			return preferV4(n.Addresses)
		}
	}
	if _, ok := s.exitNode(nm); ok && strings.Contains(label, ".") {
		// A name outside the mesh (not a bare label, not under the mesh
		// domain): the internet's, asked through the exit node.
		return d.lookupViaExit(ctx, name)
	}
	return netip.Addr{}, fmt.Errorf("%w: %s", proxy.ErrUnknownHost, localapi.NotVisible(strconv.Quote(name)))
}

func preferV4(ps []netip.Prefix) (netip.Addr, error) {
	for _, p := range ps {
		if p.Addr().Is4() {
			return p.Addr(), nil
		}
	}
	if len(ps) > 0 {
		return ps[0].Addr(), nil
	}
	return netip.Addr{}, errors.New("node has no mesh address")
}

// dialAddr connects through the mesh to addr, which must belong to this
// node or one of its peers.
func (d *Daemon) dialAddr(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error) {
	s, nm, err := d.running()
	if err != nil {
		return nil, err
	}
	if _, ok := owner(nm, addr.Addr()); !ok {
		k, ok := s.carrier(nm, addr.Addr())
		if !ok {
			return nil, errors.New(localapi.NotVisible("address " + addr.Addr().String()))
		}
		if s.lanDirect(nm, k, addr.Addr()) {
			return hostDial(ctx, network, addr)
		}
	}
	eng := s.engine()
	if eng == nil {
		return nil, errNotRunning
	}
	return eng.DialContext(ctx, network, addr)
}

// carrier returns the peer that takes a, a non-mesh address, under the
// session's route assignment (engine.Assign) for nm: a subnet router, or
// the exit node this session uses.
func (s *session) carrier(nm *controlclient.Netmap, a netip.Addr) (key.NodePublic, bool) {
	exit, _ := s.exitNode(nm)
	return engine.RouteFor(engine.Assign(nm.Peers, exit.NodeKey), a)
}

// lanDirect reports whether a, a non-mesh address that peer k carries,
// is dialled from the host rather than through the mesh: only with
// --exit-node-allow-lan-access, only for what goes to the exit node (a
// peer's subnet route stays more specific), and only on a network the
// host is directly on.
func (s *session) lanDirect(nm *controlclient.Netmap, k key.NodePublic, a netip.Addr) bool {
	exit, ok := s.exitNode(nm)
	return ok && s.st.ExitNodeAllowLAN && k == exit.NodeKey && lanDirect(a.Unmap())
}

// owner returns the node of the netmap that has address a.
func owner(nm *controlclient.Netmap, a netip.Addr) (wire.Node, bool) {
	for _, n := range append([]wire.Node{nm.Self}, nm.Peers...) {
		for _, p := range n.Addresses {
			if p.Addr() == a {
				return n, true
			}
		}
	}
	return wire.Node{}, false
}

// Dial implements localapi.Backend.
func (d *Daemon) Dial(ctx context.Context, network, hostport string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("%q must be host:port: %w", hostport, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("bad port %q", portStr)
	}
	a, err := d.Resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	return d.dialAddr(ctx, network, netip.AddrPortFrom(a, uint16(port)))
}

// ServeProxy serves SOCKS5 and HTTP CONNECT (one port speaks both) on ln,
// which must be on loopback, until ctx ends.
func (d *Daemon) ServeProxy(ctx context.Context, ln net.Listener) error {
	if err := proxy.RequireLoopback(ln.Addr()); err != nil {
		return err
	}
	srv, err := proxy.New(proxy.Config{Dial: d.dialAddr, Resolve: d.Resolve, Logger: d.log.With("part", "proxy")})
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.proxyAddrs = append(d.proxyAddrs, ln.Addr().String())
	d.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	err = srv.Serve(ln)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Ping implements localapi.Backend.
func (d *Daemon) Ping(ctx context.Context, req localapi.PingRequest) (localapi.PingReport, error) {
	if req.Count <= 0 {
		req.Count = 3
	}
	if req.Count > 100 {
		return localapi.PingReport{}, errors.New("ping: at most 100 probes")
	}
	a, err := d.Resolve(ctx, req.Peer)
	if err != nil {
		return localapi.PingReport{}, err
	}
	s, nm, err := d.running()
	if err != nil {
		return localapi.PingReport{}, err
	}
	n, ok := owner(nm, a)
	if !ok {
		return localapi.PingReport{}, errors.New(localapi.NotVisible("address " + a.String()))
	}
	eng := s.engine()
	if eng == nil {
		return localapi.PingReport{}, errNotRunning
	}
	rep := localapi.PingReport{Peer: n.Name, Address: a, Path: eng.Path(n.NodeKey)}
	for i := range req.Count {
		r := localapi.PingResult{Kind: "wireguard", Seq: i + 1}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		rtt, err := eng.Ping(pctx, a)
		cancel()
		if err != nil {
			r.Error = err.Error()
		} else {
			r.RTT = rtt
		}
		rep.Results = append(rep.Results, r)
	}
	if req.TCPPort != 0 {
		for i := range req.Count {
			r := localapi.PingResult{Kind: "tcp", Seq: i + 1}
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			start := time.Now()
			c, err := eng.DialContext(pctx, "tcp", netip.AddrPortFrom(a, req.TCPPort))
			cancel()
			if err != nil {
				r.Error = err.Error()
			} else {
				r.RTT = time.Since(start)
				c.Close()
			}
			rep.Results = append(rep.Results, r)
		}
	}
	rep.Path = eng.Path(n.NodeKey)
	return rep, nil
}

// Netcheck implements localapi.Backend.
func (d *Daemon) Netcheck(ctx context.Context) (localapi.NetcheckReport, error) {
	d.mu.Lock()
	coord, ckey, port := d.st.Coordinator, d.st.ControlKey, d.st.ListenPort
	d.mu.Unlock()
	rep := localapi.NetcheckReport{ListenPort: port, Coordinator: coord}
	if s, _, err := d.running(); err == nil {
		eng := s.engine()
		rep.ListenPort = eng.Port()
		rep.ControlChannelOpen = s.client.Connected()
		rep.HomeRegion = eng.HomeRegion()
		mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		rep.Network, err = eng.Netcheck(mctx)
		cancel()
		if err != nil {
			rep.NetworkError = err.Error()
		}
	} else {
		rep.NetworkError = "the node is not running (warren up): nothing measured"
	}
	rep.NAT = natSummary(rep.Network)
	for _, ep := range d.endpoints(rep.ListenPort) {
		rep.Endpoints = append(rep.Endpoints, ep.String())
	}
	if coord != "" {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		start := time.Now()
		k, err := controlclient.FetchKey(cctx, &http.Client{Transport: d.cfg.HTTPClient.Transport}, coord)
		if err != nil {
			rep.CoordinatorError = err.Error()
		} else {
			rep.CoordinatorRTT = time.Since(start)
			rep.ControlKeyMatches = k == ckey
		}
	}
	return rep, nil
}

// natSummary says in a line what the measurement means for connectivity.
func natSummary(r *netcheck.Report) string {
	switch {
	case r == nil:
		return "not measured"
	case !r.UDP:
		return "UDP blocked: all traffic goes through the relay"
	case r.MappingVariesByDest == netcheck.MappingEndpointDependent:
		return "symmetric (endpoint-dependent mapping): direct paths unlikely; the relay carries traffic"
	case r.MappingVariesByDest == netcheck.MappingEndpointIndependent:
		return "endpoint-independent mapping: direct paths work through hole punching"
	}
	return "UDP works; mapping unknown (needs two STUN servers to tell)"
}
