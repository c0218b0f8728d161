// Package natlab builds, for one test, a small internet of network
// namespaces with two home networks behind Linux NAT routers, for testing
// NAT traversal (STUN, hole punching, relay fallback, NAT rebinding) with
// real kernel NAT instead of a simulation.
//
// The topology (IPv4 only; the routers do not hairpin, so a host cannot
// reach its own router's WAN address and mapped port):
//
//	Public (the internet): a router with 198.51.100.1 (the sites'
//	gateway) on a link to each site, and the service addresses
//	203.0.113.1 (PublicIP) and 203.0.113.2 (PublicIP2)
//	   |                                   |
//	Left.Router  WAN 198.51.100.10         Right.Router  WAN 198.51.100.20
//	             LAN 192.168.1.1/24                      LAN 192.168.1.1/24
//	   |                                   |
//	Left.Host    192.168.1.2/24            Right.Host    192.168.1.2/24
//
// Traffic between the sites goes router to router through Public, which
// forwards it (one IP hop, decrementing the TTL, as the internet has at
// least one router between two homes). Both LANs use the same subnet, as
// two real homes do: nothing outside a LAN routes to it, so the only way
// in is through the router's NAT. A site created with None has no router:
// its host has the site's WAN address on its link to Public.
//
// Each router masquerades what leaves its WAN link, drops (rather than
// answers) unsolicited packets arriving there, as home routers do, and
// maps and filters as its NAT kind says (Unfiltered does not drop). A
// test can change that while it runs: Router.SetNAT switches the kind,
// Router.Rebind moves UDP flows to new WAN ports (a NAT rebinding),
// Router.FlushConntrack forgets every mapping.
//
// natlab must never touch the namespace the test runs in: the routers'
// iptables rules and conntrack tables live inside their own namespaces,
// and everything goes when the test ends (netns.New removes the
// namespaces).
//
// It is for tests only and needs root, iproute2, iptables (nft or legacy
// backend, whichever works here) and conntrack; New skips the test, saying
// what is missing, otherwise. Traffic never leaves the lab's namespaces.
package natlab

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/warrenmesh/warren/internal/tstest/netns"
)

// NAT is how a site's router translates and filters.
type NAT int

const (
	// EndpointIndependent is plain MASQUERADE: a LAN socket keeps its port
	// on the WAN side when it is free, and every destination sees the same
	// mapped address and port (endpoint-independent mapping: Linux reuses
	// the mapping of a LAN address and port while any of its flows is in
	// the router's conntrack table), while packets are let in only from an
	// address and port the LAN side has sent to (address-and-port-dependent
	// filtering, by conntrack). Hole punching between two of these works.
	EndpointIndependent NAT = iota
	// Symmetric is MASQUERADE --random-fully: every new destination gets a
	// new random WAN port (endpoint-dependent mapping), so the port a STUN
	// server reports is useless to a peer and hole punching fails.
	Symmetric
	// BlockUDP translates as EndpointIndependent but drops all forwarded
	// UDP: only TCP (such as a relay's websocket) gets through.
	BlockUDP
	// Unfiltered maps as EndpointIndependent but does not firewall: a
	// packet from the internet that matches no mapping is not dropped but
	// goes to the router itself, as on a Linux router with MASQUERADE and
	// no input rules. The router has nothing listening, yet the packet
	// leaves a conntrack entry (for about 30 s, renewed by each packet),
	// and that entry takes the WAN address and port it was sent to away
	// from the router's own mappings: when the LAN host then sends to
	// that peer, MASQUERADE gives the flow another WAN port. So between
	// two of these, whichever host sends first makes the other one's
	// reply come from an unexpected port, which the first one's router
	// then treats as unsolicited too: plain hole punching never works.
	Unfiltered
	// None gives the site no router: its host is on the public segment
	// with a public address (Site.HostIP == Site.WANIP).
	None
)

// String returns the kind's name, such as "endpoint-independent".
func (k NAT) String() string {
	switch k {
	case EndpointIndependent:
		return "endpoint-independent"
	case Symmetric:
		return "symmetric"
	case BlockUDP:
		return "block-udp"
	case Unfiltered:
		return "unfiltered"
	case None:
		return "none"
	}
	return fmt.Sprintf("NAT(%d)", int(k))
}

// Addresses of the lab; they are the same in every lab, each lab being its
// own set of namespaces.
var (
	// PublicIP and PublicIP2 are the public namespace's service addresses.
	PublicIP  = netip.MustParseAddr("203.0.113.1")
	PublicIP2 = netip.MustParseAddr("203.0.113.2")
	// LeftWANIP and RightWANIP are the routers' public addresses (or, for
	// None, the hosts').
	LeftWANIP  = netip.MustParseAddr("198.51.100.10")
	RightWANIP = netip.MustParseAddr("198.51.100.20")
	// RouterLANIP and HostLANIP are the addresses on each LAN (the same on
	// both sides).
	RouterLANIP = netip.MustParseAddr("192.168.1.1")
	HostLANIP   = netip.MustParseAddr("192.168.1.2")
)

// gateway is the public namespace's address on the routers' segment,
// their default route.
var gateway = netip.MustParseAddr("198.51.100.1")

const (
	lanBits = 24 // 192.168.1.0/24 on each LAN
)

// Lab is the whole topology: the public namespace and two sites.
type Lab struct {
	// Public is the internet: run coordinators, relays and STUN servers
	// here, on PublicIP and PublicIP2.
	Public *netns.Namespace
	// PublicIP and PublicIP2 are the package's PublicIP and PublicIP2.
	PublicIP, PublicIP2 netip.Addr
	// Left and Right are the two sites.
	Left, Right *Site
}

// Site is a home network: a router doing NAT and one host behind it.
type Site struct {
	// Router is the site's NAT router; nil for None.
	Router *Router
	// Host is the namespace of the machine on the LAN.
	Host *netns.Namespace
	// HostIP is Host's address: HostLANIP behind a router, WANIP for None.
	HostIP netip.Addr
	// WANIP is the site's public address: the router's (the source the
	// public side sees) or, for None, the host's.
	WANIP netip.Addr
}

// NAT returns the site's NAT kind: its router's, or None.
func (s *Site) NAT() NAT {
	if s.Router == nil {
		return None
	}
	return s.Router.NAT()
}

// New builds the lab for tb with the given NAT kinds on the left and right
// sites, and removes it when tb ends. It skips tb, saying why, without
// root or the tools it needs.
func New(tb testing.TB, left, right NAT) *Lab {
	tb.Helper()
	netns.Skip(tb)
	for _, k := range []NAT{left, right} {
		if k < EndpointIndependent || k > None {
			tb.Fatalf("natlab: unknown NAT kind %d", int(k))
		}
	}
	var ipt *tables
	if left != None || right != None {
		ipt = skipWithoutTables(tb)
	}

	pub := netns.New(tb, "natlab-public")
	for _, a := range []netip.Addr{PublicIP, PublicIP2} {
		pub.AddAddr("lo", netip.PrefixFrom(a, 32).String())
	}
	pub.EnableForwarding()

	lab := &Lab{Public: pub, PublicIP: PublicIP, PublicIP2: PublicIP2}
	lab.Left = newSite(tb, pub, ipt, "left", LeftWANIP, left)
	lab.Right = newSite(tb, pub, ipt, "right", RightWANIP, right)
	return lab
}

// newSite builds one site and links it to the public namespace.
func newSite(tb testing.TB, pub *netns.Namespace, ipt *tables, name string, wanIP netip.Addr, kind NAT) *Site {
	tb.Helper()
	host := netns.New(tb, "natlab-"+name+"-host")
	if kind == None {
		linkWAN(pub, host, wanIP)
		return &Site{Host: host, HostIP: wanIP, WANIP: wanIP}
	}

	rns := netns.New(tb, "natlab-"+name+"-router")
	wanDev := linkWAN(pub, rns, wanIP)
	lanDev, _ := netns.Connect(rns, host,
		netip.PrefixFrom(RouterLANIP, lanBits).String(), netip.PrefixFrom(HostLANIP, lanBits).String())
	host.Run("ip", "route", "add", "default", "via", RouterLANIP.String())
	r := &Router{NS: rns, WANIP: wanIP, LANIP: RouterLANIP, WANDev: wanDev, LANDev: lanDev, ipt: ipt, nat: kind}
	if err := r.apply(context.Background(), false); err != nil {
		tb.Fatalf("natlab: %s router: %v", name, err)
	}
	rns.EnableForwarding() // only now that the rules are in place
	return &Site{Router: r, Host: host, HostIP: HostLANIP, WANIP: wanIP}
}

// linkWAN links ns to the public namespace: a point-to-point link with
// wanIP on ns's end and the gateway on public's, and a default route
// through it. It returns ns's device.
func linkWAN(pub, ns *netns.Namespace, wanIP netip.Addr) string {
	dev, pubDev := netns.Connect(ns, pub, "", "")
	ns.Run("ip", "addr", "add", wanIP.String(), "peer", netip.PrefixFrom(gateway, 32).String(), "dev", dev)
	ns.Run("ip", "route", "add", "default", "via", gateway.String())
	pub.Run("ip", "addr", "add", gateway.String(), "peer", netip.PrefixFrom(wanIP, 32).String(), "dev", pubDev)
	return dev
}
