package natlab

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/warrenmesh/warren/internal/tstest/netns"
)

// rebindRanges are the WAN port ranges Rebind moves UDP mappings to, in
// turn. They lie above Linux's default ephemeral ports (32768-60999), so a
// LAN socket's own port is never inside them and the mapping always moves.
var rebindRanges = [][2]uint16{{61000, 62999}, {63000, 64999}}

// Router is a site's NAT router: a namespace with a WAN link on the public
// segment and a LAN link to the site's host, forwarding between them
// through iptables NAT. Its methods may be called from any goroutine.
type Router struct {
	// NS is the router's namespace.
	NS *netns.Namespace
	// WANIP is the router's public address, the source the public side
	// sees for traffic from the LAN.
	WANIP netip.Addr
	// LANIP is the router's address on its LAN, the host's gateway.
	LANIP netip.Addr
	// WANDev and LANDev are the router's links (inside NS).
	WANDev, LANDev string

	ipt *tables

	mu      sync.Mutex
	nat     NAT
	ports   [2]uint16 // WAN port range for UDP; zero for the kernel's choice
	rebinds int
}

// NAT returns the router's current NAT kind.
func (r *Router) NAT() NAT {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nat
}

// SetNAT switches the router to kind (not None) and forgets its UDP
// mappings, so the next packet of every UDP flow is mapped by the new
// rules. TCP connections keep their mappings.
func (r *Router) SetNAT(kind NAT) error {
	if kind < EndpointIndependent || kind >= None {
		return fmt.Errorf("natlab: SetNAT(%v): a router cannot switch to None", kind)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nat = kind
	return r.apply(context.Background(), true)
}

// FlushConntrack empties the router's connection tracking table (conntrack
// -F): every existing flow, UDP and TCP, gets a fresh mapping from its next
// outgoing packet, and until then packets from outside are dropped as
// unsolicited. A fresh mapping keeps the LAN port when it is free and no
// port range is set, so the mapped port usually does not change (use
// Rebind for that); with a range (ChangePorts, Rebind) it is a random port
// in the range.
func (r *Router) FlushConntrack() error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	_, err := exec(ctx, r.NS, "", r.ipt.conntrack, "-F")
	return err
}

// ChangePorts makes the router map UDP from its LAN to WAN ports in lo-hi
// (MASQUERADE --to-ports) and forgets its UDP mappings, so every UDP flow
// gets a new WAN port from its next outgoing packet: a NAT rebinding. A
// LAN port that is itself inside lo-hi and free is kept. Mapping stays as
// the NAT kind says (Linux reuses a LAN socket's current mapping for new
// destinations unless the kind is Symmetric). TCP keeps its mappings.
// ChangePorts(0, 0) returns to the kernel's default choice.
func (r *Router) ChangePorts(lo, hi uint16) error {
	if lo > hi || (lo == 0) != (hi == 0) {
		return fmt.Errorf("natlab: ChangePorts(%d, %d): want 0 < lo <= hi, or both 0", lo, hi)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ports = [2]uint16{lo, hi}
	return r.apply(context.Background(), true)
}

// Rebind moves the router's UDP mappings to a port range other than the
// current one (see ChangePorts), so every UDP flow through it is certain
// to get a new WAN port, and returns the new range. Ranges alternate
// between 61000-62999 and 63000-64999, above Linux's ephemeral ports (a
// LAN socket bound on purpose to a port inside the new range would keep
// it).
func (r *Router) Rebind() (lo, hi uint16, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := rebindRanges[r.rebinds%len(rebindRanges)]
	r.rebinds++
	if next == r.ports { // set by ChangePorts; take the other one
		next = rebindRanges[r.rebinds%len(rebindRanges)]
		r.rebinds++
	}
	r.ports = next
	return next[0], next[1], r.apply(context.Background(), true)
}

// Conntrack returns the router's connection tracking table (conntrack -L)
// for logging when a test fails.
func (r *Router) Conntrack() string {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := exec(ctx, r.NS, "", r.ipt.conntrack, "-L")
	if err != nil {
		return err.Error()
	}
	return out
}

// apply loads the rules for the router's state, replacing its nat and
// filter tables in one step, and then, if forget is set, deletes its UDP
// conntrack entries. r.mu must be held (or r not yet shared).
func (r *Router) apply(ctx context.Context, forget bool) error {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	if err := r.ipt.load(ctx, r.NS, rules(r.WANDev, r.nat, r.ports)); err != nil {
		return err
	}
	if forget {
		return r.ipt.forgetUDP(ctx, r.NS)
	}
	return nil
}

// rules returns the iptables-restore input for a router whose WAN link is
// wan. UDP gets its own MASQUERADE rule so ports can apply to it alone.
func rules(wan string, kind NAT, ports [2]uint16) string {
	masq := "-j MASQUERADE"
	if kind == Symmetric {
		masq += " --random-fully"
	}
	udpMasq := masq
	if ports != [2]uint16{} {
		udpMasq = fmt.Sprintf("-j MASQUERADE --to-ports %d-%d", ports[0], ports[1])
		if kind == Symmetric {
			udpMasq += " --random-fully"
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n")
	fmt.Fprintf(&b, "-A POSTROUTING -o %s -p udp %s\n", wan, udpMasq)
	fmt.Fprintf(&b, "-A POSTROUTING -o %s %s\n", wan, masq)
	fmt.Fprintf(&b, "COMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n")
	// Unsolicited packets from the internet are dropped, not answered.
	// This matters for hole punching: a peer's first packet, arriving
	// before our host has sent to the peer, must not leave a conntrack
	// entry behind (one for local delivery would), or that entry would
	// clash with our host's own flow to the peer, and the kernel would
	// give that flow a different port than the one STUN reported.
	// Unfiltered does neither, on purpose.
	if kind != Unfiltered {
		fmt.Fprintf(&b, "-A INPUT -i %s -m conntrack --ctstate NEW,INVALID -j DROP\n", wan)
		fmt.Fprintf(&b, "-A FORWARD -i %s -m conntrack --ctstate NEW,INVALID -j DROP\n", wan)
	}
	if kind == BlockUDP {
		fmt.Fprintf(&b, "-A FORWARD -p udp -j DROP\n")
	}
	fmt.Fprintf(&b, "COMMIT\n")
	return b.String()
}
