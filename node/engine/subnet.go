package engine

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/routes"
	"github.com/warrenmesh/warren/internal/wire"
)

// keepOut is an address a kernel subnet route must never cover, and why:
// the host's own addresses, the coordinator's and the relays'. Routing one
// of them into the TUN device would send the node's control connection,
// or WireGuard's own UDP, into the tunnel that they carry.
type keepOut struct {
	addr netip.Addr
	why  string // "this host's address", "the coordinator", "a relay"
}

// skippedRoute is a subnet route a TUN-mode node does not install, and why.
type skippedRoute struct {
	dst    netip.Prefix
	reason string
}

func (s skippedRoute) String() string { return fmt.Sprintf("%s: %s", s.dst, s.reason) }

// planSubnetRoutes decides the kernel routes a TUN-mode node installs on
// its device for the subnet routes its peers carry (assignment, from
// SubnetRoutes): one per prefix, with the node's mesh address of the
// prefix's family as the preferred source. Exit routes are never
// installed here, nor a prefix that overlaps the mesh ranges, nor one that
// covers an address in avoid (skipped, with the reason, for a warning),
// nor one of a family the node has no mesh address in. The result is
// sorted by prefix.
func planSubnetRoutes(assignment map[netip.Prefix]key.NodePublic, self []netip.Prefix, avoid []keepOut) (install []tunRoute, skipped []skippedRoute) {
	var v4, v6 netip.Addr
	for _, p := range self {
		a := p.Addr().Unmap()
		switch {
		case a.Is4() && !v4.IsValid():
			v4 = a
		case a.Is6() && !v6.IsValid():
			v6 = a
		}
	}
	dsts := make([]netip.Prefix, 0, len(assignment))
	for r := range assignment {
		dsts = append(dsts, r)
	}
	routes.Sort(dsts)
next:
	for _, r := range dsts {
		if !r.IsValid() || routes.IsExit(r) {
			continue
		}
		r = r.Masked()
		for _, m := range meshPrefixes {
			if m.Overlaps(r) {
				skipped = append(skipped, skippedRoute{r, "overlaps the mesh range " + m.String()})
				continue next
			}
		}
		for _, k := range avoid {
			if r.Contains(k.addr.Unmap()) {
				skipped = append(skipped, skippedRoute{r, fmt.Sprintf("covers %s (%s), which must not go through the tunnel", k.addr.Unmap(), k.why)})
				continue next
			}
		}
		src := v4
		if r.Addr().Is6() {
			src = v6
		}
		if !src.IsValid() {
			skipped = append(skipped, skippedRoute{r, "this node has no mesh address of that family"})
			continue
		}
		install = append(install, tunRoute{dst: r, src: src})
	}
	return install, skipped
}

// dropLoopingEndpoints returns peers without the endpoints that lie inside
// an installed subnet route: packets to them would enter the TUN device
// and be carried by WireGuard itself (a router's own LAN address, say,
// which it advertises and which is behind its route). The peer stays
// reachable at its other endpoints and through the relays. peers is not
// modified.
func dropLoopingEndpoints(peers []wire.Node, installed []tunRoute) []wire.Node {
	if len(installed) == 0 {
		return peers
	}
	inside := func(ep netip.AddrPort) bool {
		return slices.ContainsFunc(installed, func(r tunRoute) bool { return r.dst.Contains(ep.Addr().Unmap()) })
	}
	var out []wire.Node
	for i, p := range peers {
		if !slices.ContainsFunc(p.Endpoints, inside) {
			continue
		}
		if out == nil {
			out = slices.Clone(peers)
		}
		out[i].Endpoints = slices.DeleteFunc(slices.Clone(p.Endpoints), inside)
	}
	if out == nil {
		return peers
	}
	return out
}

// diffRoutes returns the routes in next and not in cur (to add) and those
// in cur and not in next (to delete).
func diffRoutes(cur, next []tunRoute) (add, del []tunRoute) {
	for _, r := range next {
		if !slices.Contains(cur, r) {
			add = append(add, r)
		}
	}
	for _, r := range cur {
		if !slices.Contains(next, r) {
			del = append(del, r)
		}
	}
	return add, del
}

// errRouterUnsupported: only Linux forwards for peers in kernel TUN mode.
var errRouterUnsupported = errors.New("engine: subnet routing in TUN mode is not supported on this OS yet: use userspace mode (leave --tun empty) on a router")

// subnetRouteSetter is a kernel TUN device that can carry kernel routes for
// peers' subnet routes.
type subnetRouteSetter interface {
	setSubnetRoutes(add, del []tunRoute) error
}

// installSubnetRoutes makes the kernel routes on a TUN device match the
// subnet routes assigned to peers, and returns those installed (nil in
// userspace mode, where the proxy reaches them). Called with mu held.
func (e *Engine) installSubnetRoutes(assignment map[netip.Prefix]key.NodePublic) []tunRoute {
	dev, ok := e.net.(subnetRouteSetter)
	if !ok {
		return nil
	}
	install, skipped := planSubnetRoutes(assignment, e.addrs, e.avoidAddrs())
	if s := fmt.Sprint(skipped); s != e.skipped {
		e.skipped = s
		for _, sk := range skipped {
			e.log.Warn("not routing a peer's subnet through the tunnel", "route", sk.dst, "why", sk.reason)
		}
	}
	add, del := diffRoutes(e.installed, install)
	if err := dev.setSubnetRoutes(add, del); err != nil {
		e.log.Warn("subnet routes", "err", err)
	}
	e.installed = install
	return install
}

// avoidAddrs are the addresses no kernel subnet route may cover: the
// host's own (outside the mesh), the relays' given by IP, and KeepOut's.
func (e *Engine) avoidAddrs() []keepOut {
	var out []keepOut
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok && !isMeshAddr(ip) && !ip.Unmap().IsLoopback() {
					out = append(out, keepOut{ip.Unmap(), "this host's address"})
				}
			}
		}
	}
	for _, a := range e.derpAddrs {
		out = append(out, keepOut{a, "a relay"})
	}
	if e.keepOut != nil {
		for _, a := range e.keepOut() {
			out = append(out, keepOut{a, "the coordinator"})
		}
	}
	return out
}

// derpAddrs are the relays' addresses given as IP literals in m (their
// URLs and STUN servers); names are not resolved here.
func derpAddrs(m *wire.DERPMap) []netip.Addr {
	if m == nil {
		return nil
	}
	var out []netip.Addr
	add := func(host string) {
		if a, err := netip.ParseAddr(host); err == nil {
			out = append(out, a.Unmap())
		}
	}
	for _, r := range m.Regions {
		if u, err := url.Parse(r.URL); err == nil {
			add(u.Hostname())
		}
		for _, s := range r.STUN {
			if h, _, err := net.SplitHostPort(s); err == nil {
				add(h)
			} else {
				add(s)
			}
		}
	}
	return out
}
