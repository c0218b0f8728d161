package daemon

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/engine"
	"github.com/warrenmesh/warren/node/localapi"
)

// mode names the data plane kind for status output.
func (d *Daemon) mode() string {
	if d.cfg.TUN != "" {
		return "tun:" + d.cfg.TUN
	}
	return "userspace"
}

// Status implements localapi.Backend.
func (d *Daemon) Status(ctx context.Context) localapi.Status {
	d.mu.Lock()
	s, lastErr, coord, proxies := d.sess, d.lastErr, d.st.Coordinator, slices.Clone(d.proxyAddrs)
	d.mu.Unlock()
	st := localapi.Status{State: localapi.StateStopped, Coordinator: coord, Mode: d.mode(), Peers: []localapi.PeerStatus{}}
	if len(proxies) > 0 {
		st.SOCKS5, st.HTTPProxy = proxies[0], proxies[0]
	}
	if d.flows != nil {
		fs := d.flows.Stats()
		st.FlowSpool = &localapi.FlowSpoolStatus{Bytes: fs.Bytes, Max: fs.Max, Pending: fs.Pending, Dropped: fs.Dropped}
	}
	if s == nil {
		if lastErr != "" {
			st.State, st.Error = localapi.StateError, lastErr
		}
		return st
	}
	select {
	case <-s.done:
		st.State, st.Error = localapi.StateError, s.runErr().Error()
		return st
	default:
	}
	st.State = localapi.StateStarting
	if s.client == nil {
		return st
	}
	st.Connected = s.client.Connected()
	nm := s.netmap()
	eng := s.engine()
	if nm == nil || eng == nil {
		s.mu.Lock()
		if s.loginURL != "" {
			st.State, st.AuthURL = localapi.StateNeedsLogin, s.loginURL
		}
		s.mu.Unlock()
		return st
	}
	st.State = localapi.StateRunning
	if dev := eng.TUNName(); dev != "" {
		st.Mode = "tun:" + dev // as the OS named it (macOS: utunN whatever --tun said)
	}
	st.Domain = nm.Domain
	if m := s.magicDNS(); m != nil {
		st.MagicDNS = m.state()
	}
	st.ListenPort = eng.Port()
	for _, ep := range nm.Self.Endpoints {
		st.Endpoints = append(st.Endpoints, ep.String())
	}
	self := peerStatus(nm.Self, nm.Domain)
	st.Self = &self
	wg := map[string]engine.PeerStatus{}
	if ps, err := eng.Status(); err == nil {
		for _, p := range ps {
			wg[p.NodeKey.String()] = p
		}
	}
	primary := eng.PrimaryRoutes()
	for _, p := range nm.Peers {
		ps := peerStatus(p, nm.Domain)
		ps.PrimaryRoutes = primary[p.NodeKey]
		if w, ok := wg[p.NodeKey.String()]; ok {
			ps.Path, ps.LastHandshake, ps.RxBytes, ps.TxBytes = w.Path, w.LastHandshake, w.RxBytes, w.TxBytes
		}
		if info, ok := eng.PathInfo(p.NodeKey); ok {
			ps.PathRTT = info.RTT
		}
		st.Peers = append(st.Peers, ps)
	}
	s.exitStatus(&st, nm)
	st.Posture = postureStatus(nm.Posture)
	for _, n := range eng.FilterStats().Dropped {
		st.Dropped += n
	}
	return st
}

// postureStatus is the coordinator's posture view as the local API
// carries it.
func postureStatus(p *wire.PostureStatus) *localapi.PostureStatus {
	if p == nil || len(p.Attrs) == 0 && len(p.Denials) == 0 && len(p.MFA) == 0 {
		return nil
	}
	out := &localapi.PostureStatus{}
	for _, a := range p.Attrs {
		out.Attrs = append(out.Attrs, localapi.PostureAttr{Name: a.Name, Value: a.Value, Source: a.Source,
			CollectedAt: a.CollectedAt, Expires: a.Expires, Stale: a.Stale})
	}
	for _, d := range p.Denials {
		out.Denials = append(out.Denials, localapi.PostureDenial{Destination: d.Destination, Posture: d.Posture, Reason: d.Reason})
	}
	for _, d := range p.MFA {
		out.MFA = append(out.MFA, localapi.MFADenial{Destination: d.Destination, Rule: d.Rule, MaxAge: d.MaxAge})
	}
	return out
}

func peerStatus(n wire.Node, domain string) localapi.PeerStatus {
	return localapi.PeerStatus{
		ID: int64(n.ID), Name: n.Name, DNSName: n.Name + "." + domain, Hostname: n.Hostname,
		User: n.User, Tags: n.Tags, Addresses: n.Addresses, Online: n.Online,
		Endpoints: n.Endpoints, HomeRelay: n.HomeRelay, KeyExpiry: n.KeyExpiry,
		Routes: n.Routes,
	}
}

// endpoints lists where this node can be reached: the configured
// endpoints, or the host's interface addresses (loopback only when there
// is nothing else), with port.
func (d *Daemon) endpoints(port uint16) []netip.AddrPort {
	if len(d.cfg.Endpoints) > 0 {
		out := make([]netip.AddrPort, 0, len(d.cfg.Endpoints))
		for _, ep := range d.cfg.Endpoints {
			if ep.Port() == 0 {
				ep = netip.AddrPortFrom(ep.Addr(), port)
			}
			out = append(out, ep)
		}
		return out
	}
	var out, loop []netip.AddrPort
	ifaces, _ := net.Interfaces()
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || (d.cfg.TUN != "" && ifc.Name == d.cfg.TUN) {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			switch {
			case ip.IsLoopback():
				loop = append(loop, netip.AddrPortFrom(ip, port))
			case ip.IsLinkLocalUnicast(), ip.IsMulticast(), ip.IsUnspecified(), isMeshAddr(ip):
			default:
				out = append(out, netip.AddrPortFrom(ip, port))
			}
		}
	}
	if len(out) == 0 {
		out = loop
	}
	slices.SortFunc(out, func(a, b netip.AddrPort) int { return a.Compare(b) })
	return out
}

// Mesh address ranges: nothing else is reachable through Warren.
var (
	meshV4 = netip.MustParsePrefix("100.64.0.0/10")
	meshV6 = netip.MustParsePrefix("fd7a:115c:a1e0::/48")
)

func isMeshAddr(a netip.Addr) bool { return meshV4.Contains(a) || meshV6.Contains(a) }

// trimDomain strips a trailing dot and the mesh domain from a name.
func trimDomain(name, domain string) string {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if domain != "" {
		name = strings.TrimSuffix(name, "."+strings.ToLower(domain))
	}
	return name
}
