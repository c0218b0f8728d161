package main

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/warrenmesh/warren/internal/cli"
	"github.com/warrenmesh/warren/node/localapi"
)

// Both commands answer from the node's netmap, as "warren status" shows
// it: a node this node is not told of (none such, or hidden by the
// policy) is unknown to them, and they say so rather than guess.

// ipOutput is "warren ip --json".
type ipOutput struct {
	Name      string       `json:"name"`
	Addresses []netip.Addr `json:"addresses"`
}

func (c *command) ip(args []string) error {
	fs := c.flags()
	only4 := fs.Bool("4", false, "only the IPv4 address")
	only6 := fs.Bool("6", false, "only the IPv6 address")
	pos, err := cli.ParseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 || (*only4 && *only6) {
		return fmt.Errorf("usage: warren ip [-4|-6] [PEER]")
	}
	st, err := c.running()
	if err != nil {
		return err
	}
	n := *st.Self
	if len(pos) == 1 {
		var ok bool
		if n, ok = findPeer(st, pos[0]); !ok {
			return errors.New(localapi.NotVisible(strconv.Quote(pos[0])))
		}
	}
	out := ipOutput{Name: n.Name, Addresses: []netip.Addr{}}
	for _, p := range n.Addresses {
		if a := p.Addr(); (!*only4 || a.Is4()) && (!*only6 || a.Is6()) {
			out.Addresses = append(out.Addresses, a)
		}
	}
	if len(out.Addresses) == 0 {
		return fmt.Errorf("%s has no address of that family", n.Name)
	}
	if c.json {
		return cli.PrintJSON(c.out, out)
	}
	for _, a := range out.Addresses {
		fmt.Fprintln(c.out, a)
	}
	return nil
}

// findPeer returns the node named name (a DNS label or full name) or
// holding address name.
func findPeer(st localapi.Status, name string) (localapi.PeerStatus, bool) {
	if a, err := netip.ParseAddr(name); err == nil {
		return ownerOf(st, a.Unmap())
	}
	label := strings.ToLower(strings.TrimSuffix(name, "."))
	for _, n := range append([]localapi.PeerStatus{*st.Self}, st.Peers...) {
		if label == n.Name || label == strings.ToLower(n.DNSName) {
			return n, true
		}
	}
	return localapi.PeerStatus{}, false
}

// ownerOf returns the node of st (itself or a peer) that has address a.
func ownerOf(st localapi.Status, a netip.Addr) (localapi.PeerStatus, bool) {
	for _, n := range append([]localapi.PeerStatus{*st.Self}, st.Peers...) {
		for _, p := range n.Addresses {
			if p.Addr() == a {
				return n, true
			}
		}
	}
	return localapi.PeerStatus{}, false
}

// whoisOutput is "warren whois --json".
type whoisOutput struct {
	Address netip.Addr `json:"address"`
	// Self is true when the address is this node's own.
	Self bool                `json:"self"`
	Node localapi.PeerStatus `json:"node"`
}

// Mesh address ranges, as warrend's resolver knows them.
var (
	meshV4 = netip.MustParsePrefix("100.64.0.0/10")
	meshV6 = netip.MustParsePrefix("fd7a:115c:a1e0::/48")
)

func (c *command) whois(args []string) error {
	c.flags()
	pos, err := c.parse(args, 1, "whois ADDR (a mesh address, or ADDR:PORT)")
	if err != nil {
		return err
	}
	a, err := netip.ParseAddr(pos[0])
	if err != nil {
		ap, perr := netip.ParseAddrPort(pos[0])
		if perr != nil {
			return fmt.Errorf("%q is not an address: warren whois takes a mesh address such as 100.64.0.2 (warren ip PEER gives a peer's)", pos[0])
		}
		a = ap.Addr()
	}
	a = a.Unmap()
	if !meshV4.Contains(a) && !meshV6.Contains(a) {
		return fmt.Errorf("%s is not a Warren address (the mesh is %s and %s)", a, meshV4, meshV6)
	}
	st, err := c.running()
	if err != nil {
		return err
	}
	n, ok := ownerOf(st, a)
	if !ok {
		return errors.New(localapi.NotVisible("address " + a.String()))
	}
	out := whoisOutput{Address: a, Self: n.ID == st.Self.ID, Node: n}
	if c.json {
		return cli.PrintJSON(c.out, out)
	}
	whose := "a peer of this node"
	if out.Self {
		whose = "this node"
	}
	fmt.Fprintf(c.out, "%s is %s (%s), %s\n", a, n.Name, n.DNSName, whose)
	row := func(k, v string) { fmt.Fprintf(c.out, "  %-11s %s\n", k+":", v) }
	if len(n.Tags) > 0 {
		row("Tags", strings.Join(n.Tags, ", ")+" (a tagged node, owned by its tags)")
	} else {
		row("User", dash(n.User))
	}
	row("Device", dash(n.Hostname)+" (its hostname; the coordinator does not send the OS)")
	row("Addresses", addrs(n.Addresses))
	row("Node ID", fmt.Sprint(n.ID))
	if !out.Self {
		row("Online", yesNo(n.Online))
	}
	if !n.KeyExpiry.IsZero() {
		row("Key expiry", n.KeyExpiry.UTC().Format(time.RFC3339))
	}
	return nil
}

// running returns warrend's status, or an error saying what to do when
// the node is not in the mesh.
func (c *command) running() (localapi.Status, error) {
	cl := c.client()
	defer cl.Close()
	st, err := cl.Status(c.ctx)
	if err != nil {
		return st, err
	}
	if st.State != localapi.StateRunning || st.Self == nil {
		switch st.State {
		case localapi.StateError:
			return st, fmt.Errorf("warren is not in the mesh: %s", st.Error)
		case localapi.StateNeedsLogin:
			return st, fmt.Errorf("warren is not in the mesh yet: sign in at %s", st.AuthURL)
		}
		return st, fmt.Errorf("warren is %s, not in the mesh: run warren up", st.State)
	}
	return st, nil
}
