package engine

import "net/netip"

// tunPlan is what a kernel TUN device gets on every OS: the node's mesh
// addresses, each as a host address (/32 or /128), and a route for each
// mesh range of a family the node has an address in, with that address as
// the preferred source. The per-OS files carry it out; none decides it.
type tunPlan struct {
	addrs  []netip.Addr // unmapped, in the order of the netmap
	routes []tunRoute
}

// tunRoute sends dst into the TUN device with src as the source address.
type tunRoute struct {
	dst netip.Prefix
	src netip.Addr
}

// planTUN makes the plan for the node's mesh address prefixes (from its
// netmap). A prefix counts only by its address: the device gets host
// addresses, and the mesh ranges come as routes.
func planTUN(prefixes []netip.Prefix) tunPlan {
	var p tunPlan
	var v4, v6 netip.Addr
	for _, pfx := range prefixes {
		a := pfx.Addr().Unmap()
		if !a.IsValid() {
			continue
		}
		p.addrs = append(p.addrs, a)
		switch {
		case a.Is4() && !v4.IsValid():
			v4 = a
		case a.Is6() && !v6.IsValid():
			v6 = a
		}
	}
	for _, r := range meshPrefixes {
		src := v4
		if r.Addr().Is6() {
			src = v6
		}
		if src.IsValid() {
			p.routes = append(p.routes, tunRoute{dst: r, src: src})
		}
	}
	return p
}

// hostPrefix is a as a single-address prefix: a /32 or a /128.
func hostPrefix(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// family is the part of the plan for one address family (IPv6 when v6).
func (p tunPlan) family(v6 bool) tunPlan {
	var f tunPlan
	for _, a := range p.addrs {
		if a.Is6() == v6 {
			f.addrs = append(f.addrs, a)
		}
	}
	for _, r := range p.routes {
		if r.dst.Addr().Is6() == v6 {
			f.routes = append(f.routes, r)
		}
	}
	return f
}
