package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/warrenmesh/warren/internal/routes"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/controlclient"
	"github.com/warrenmesh/warren/node/localapi"
	"github.com/warrenmesh/warren/node/proxy"
)

// errNoExitNode says a name or address is no exit node this node may use.
var errNoExitNode = errors.New("not an exit node this node may use")

// findExit returns the peer of nm that sel names (its name, DNS name or
// a mesh address) if that peer is an approved exit node: its enabled
// routes hold both 0.0.0.0/0 and ::/0. The netmap holds only peers the
// policy lets this node reach, and a peer's routes only once approved.
func findExit(nm *controlclient.Netmap, sel string) (wire.Node, error) {
	a, err := netip.ParseAddr(sel)
	isAddr := err == nil
	label := trimDomain(sel, nm.Domain)
	for _, p := range nm.Peers {
		match := p.Name == label
		if isAddr {
			for _, pa := range p.Addresses {
				match = match || pa.Addr() == a.Unmap()
			}
		}
		if !match {
			continue
		}
		if !routes.Exit(p.Routes) {
			return wire.Node{}, fmt.Errorf("exit node %q: %w (it does not offer itself as one, or no admin or autoApprovers approved it; see warren exit-node list)", sel, errNoExitNode)
		}
		return p, nil
	}
	return wire.Node{}, fmt.Errorf("exit node %q: %w: %s", sel, errNoExitNode, localapi.NotVisible("peer"))
}

// exitNode returns the exit node this session uses, if the one chosen is
// an approved exit node in nm.
func (s *session) exitNode(nm *controlclient.Netmap) (wire.Node, bool) {
	if s.st.ExitNode == "" || nm == nil {
		return wire.Node{}, false
	}
	p, err := findExit(nm, s.st.ExitNode)
	return p, err == nil
}

// lanDirect reports whether a is on one of this host's directly
// connected networks (the prefixes of its interfaces' addresses, other
// than loopback, link-local and the mesh's): with
// --exit-node-allow-lan-access those are dialled from the host, not
// through the exit node.
func lanDirect(a netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, ia := range addrs {
		in, ok := ia.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(in.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() || isMeshAddr(ip) {
			continue
		}
		bits, _ := in.Mask.Size()
		if p, err := ip.Prefix(bits); err == nil && p.Contains(a) {
			return true
		}
	}
	return false
}

// hostDial dials addr from the host (allow-lan-access).
func hostDial(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, addr.String())
}

// exitStatus fills in the exit-node parts of st from the session's
// choice and nm.
func (s *session) exitStatus(st *localapi.Status, nm *controlclient.Netmap) {
	st.ExitNodeAllowLANAccess = s.st.ExitNode != "" && s.st.ExitNodeAllowLAN
	if p, ok := s.exitNode(nm); ok {
		st.ExitNode = p.Name
	} else if s.st.ExitNode != "" {
		st.ExitNodeWanted = s.st.ExitNode
	}
	for i := range st.Peers {
		for _, p := range nm.Peers {
			if int64(p.ID) == st.Peers[i].ID && routes.Exit(p.Routes) {
				st.Peers[i].ExitNodeOption = true
			}
		}
	}
}

// validExitChoice checks an exit-node choice against the running
// session's netmap, if there is one (otherwise the session checks it on
// its first netmap and status reports a choice it cannot use).
func (d *Daemon) validExitChoice(sel string) error {
	sel = strings.TrimSpace(sel)
	if sel == "" {
		return nil
	}
	s := d.current()
	if s == nil {
		return nil
	}
	nm := s.netmap()
	if nm == nil {
		return nil
	}
	_, err := findExit(nm, sel)
	return err
}

// lookupViaExit resolves name, a name outside the mesh, with the host's
// resolvers (its resolv.conf) but sends the queries the way the proxy
// sends traffic while an exit node is in use: through the exit node,
// which dials the resolver from its host (so the resolver sees the exit
// node, and the exit node's filter decides, as for any traffic: the
// policy's autogroup:internet). With allow-lan-access a resolver on the
// host's LAN is asked directly; a loopback resolver (a local stub such
// as systemd-resolved's 127.0.0.53) cannot be reached through the exit
// node and is refused at once.
func (d *Daemon) lookupViaExit(ctx context.Context, name string) (netip.Addr, error) {
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return nil, err
		}
		if ap.Addr().Unmap().IsLoopback() {
			return nil, fmt.Errorf("resolver %s is on loopback: it cannot be asked through the exit node (configure a resolver on the network or the internet)", ap)
		}
		return d.dialAddr(ctx, network, ap)
	}}
	addrs, err := r.LookupNetIP(ctx, "ip", name)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: %s: through the exit node: %v", proxy.ErrUnknownHost, name, err)
	}
	for _, a := range addrs {
		if a.Unmap().Is4() {
			return a.Unmap(), nil
		}
	}
	if len(addrs) == 0 {
		return netip.Addr{}, fmt.Errorf("%w: %s", proxy.ErrUnknownHost, name)
	}
	return addrs[0], nil
}
