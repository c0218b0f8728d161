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

// Mesh address ranges, as warrend's resolver knows them.
var (
	meshV4 = netip.MustParsePrefix("100.64.0.0/10")
	meshV6 = netip.MustParsePrefix("fd7a:115c:a1e0::/48")
)

const whoisUsage = "whois ADDR[:PORT]|PEER (a mesh address, with the port of this node it came to; or the address a service on this host sees for a connection warrend --expose made)"

// whois answers for a connection arriving on this node, from warrend's
// whois (GET /v0/whois): exit status 0 when found, 1 when not, 2 on a
// usage error.
func (c *command) whois(args []string) error {
	c.flags()
	pos, err := c.parse(args, 1, whoisUsage)
	if err != nil {
		return &cli.ExitError{Code: 2, Err: err}
	}
	arg := pos[0]
	addr := arg
	if a, err := netip.ParseAddr(arg); err == nil {
		if a = a.Unmap(); !meshV4.Contains(a) && !meshV6.Contains(a) {
			return &cli.ExitError{Code: 2, Err: fmt.Errorf("%s is not a Warren address (the mesh is %s and %s); for a connection warrend --expose made, give the address and port the service sees, e.g. 127.0.0.1:51234", a, meshV4, meshV6)}
		}
	} else if _, err := netip.ParseAddrPort(arg); err != nil {
		// A peer's name: ask about its address.
		st, err := c.running()
		if err != nil {
			return err
		}
		n, ok := findPeer(st, arg)
		if !ok {
			return &cli.ExitError{Code: 1, Err: errors.New(localapi.NotVisible(strconv.Quote(arg)))}
		}
		if len(n.Addresses) == 0 {
			return &cli.ExitError{Code: 1, Err: fmt.Errorf("%s has no mesh address", n.Name)}
		}
		addr = n.Addresses[0].Addr().String()
	}
	cl := c.client()
	defer cl.Close()
	w, err := cl.WhoIs(c.ctx, addr)
	if errors.Is(err, localapi.ErrNotFound) {
		return &cli.ExitError{Code: 1, Err: err}
	}
	if err != nil {
		return err
	}
	if c.json {
		return cli.PrintJSON(c.out, w)
	}
	whose := "a peer of this node"
	if w.Self {
		whose = "this node"
	}
	fmt.Fprintf(c.out, "%s is %s (%s), %s\n", arg, w.Node.Name, w.Node.DNSName, whose)
	row := func(k, v string) { fmt.Fprintf(c.out, "  %-11s %s\n", k+":", v) }
	if len(w.Tags) > 0 {
		row("Tags", strings.Join(w.Tags, ", ")+" (a tagged node, owned by its tags)")
	} else {
		user := dash(w.User)
		if w.UserName != "" {
			user += " (" + w.UserName + ")"
		}
		row("User", user)
		if len(w.Groups) > 0 {
			row("Groups", strings.Join(w.Groups, ", "))
		}
	}
	if len(w.Postures) > 0 {
		row("Postures", strings.Join(w.Postures, ", "))
	}
	row("Device", dash(w.Node.Hostname)+" (its hostname; the coordinator does not send the OS)")
	row("Addresses", addrs(w.Node.Addresses))
	row("Node ID", fmt.Sprint(w.Node.ID))
	if !w.Self {
		row("Online", yesNo(w.Node.Online))
	}
	if !w.Node.KeyExpiry.IsZero() {
		row("Key expiry", w.Node.KeyExpiry.UTC().Format(time.RFC3339))
	}
	if w.MeshSource.IsValid() && w.Via != "mesh" {
		row("Arrived", fmt.Sprintf("through %s, from %s", w.Via, w.MeshSource))
	}
	if w.Port != 0 && !w.Self {
		rule := w.Rule
		if rule == "" {
			rule = "none (no rule lets it connect now)"
		}
		row("Rule", fmt.Sprintf("%s (TCP to port %d)", rule, w.Port))
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
