// Package routes checks and normalises the subnet routes a node advertises
// (the networks behind it that it offers to forward to) and the exit-node
// routes (0.0.0.0/0 and ::/0 together), and computes which of them are in
// force (advertised and approved).
//
// The node's CLI uses it to refuse a bad --advertise-routes before anything
// is sent, and the coordinator uses it again on what a node sends, since a
// node can send anything. It decides nothing about who may use a route or
// who may approve one: that is the policy's job (internal/policy). It must
// never accept a route that overlaps the mesh's own address ranges, or a
// default route that is not the exit-node pair.
package routes

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// MaxAdvertised bounds how many routes one node may advertise, so that a
// node cannot make the coordinator store or compile without limit.
const MaxAdvertised = 1024

// The exit-node routes: a node advertises both, or neither.
var (
	ExitV4 = netip.MustParsePrefix("0.0.0.0/0")
	ExitV6 = netip.MustParsePrefix("::/0")
)

// The mesh's own ranges, which no route may overlap.
var (
	MeshV4 = netip.MustParsePrefix("100.64.0.0/10")
	MeshV6 = netip.MustParsePrefix("fd7a:115c:a1e0::/48")
)

// unroutable are ranges a router can never forward to for others: its own
// loopback, link-local and multicast.
var unroutable = []struct {
	p    netip.Prefix
	what string
}{
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// ErrInvalid is wrapped by every error about a bad route.
var ErrInvalid = errors.New("invalid route")

// IsExit reports whether p is one of the two exit-node routes.
func IsExit(p netip.Prefix) bool { return p == ExitV4 || p == ExitV6 }

// Parse reads a comma-separated list of prefixes, as --advertise-routes
// takes it ("10.20.0.0/24,fd00:20::/64"; blanks around items are
// ignored; "" is no routes), and checks it with Check. Exit-node routes
// are refused here: they are asked for with --advertise-exit-node.
func Parse(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			if a, aerr := netip.ParseAddr(item); aerr == nil {
				return nil, fmt.Errorf("%w: %q is an address, not a prefix: write %s", ErrInvalid, item, netip.PrefixFrom(a, a.BitLen()))
			}
			return nil, fmt.Errorf("%w: %q is not a prefix like 10.20.0.0/24 or fd00:20::/64", ErrInvalid, item)
		}
		if IsExit(p) {
			return nil, fmt.Errorf("%w: %s is a default route: use --advertise-exit-node to offer this node as an exit node", ErrInvalid, p)
		}
		out = append(out, p)
	}
	if len(out) > MaxAdvertised {
		return nil, fmt.Errorf("%w: %d routes; a node may advertise at most %d", ErrInvalid, len(out), MaxAdvertised)
	}
	return Check(out)
}

// Check validates the routes a node advertises and returns them sorted,
// without duplicates. A route must be a network address (no host bits
// set), must not overlap the mesh ranges, and must not be loopback,
// link-local or multicast; the default routes are allowed only as the
// exit-node pair, both of them. The input is not modified.
func Check(in []netip.Prefix) ([]netip.Prefix, error) {
	if len(in) > MaxAdvertised {
		return nil, fmt.Errorf("%w: %d routes; a node may advertise at most %d", ErrInvalid, len(in), MaxAdvertised)
	}
	out := make([]netip.Prefix, 0, len(in))
	exit4, exit6 := false, false
	for _, p := range in {
		if !p.IsValid() {
			return nil, fmt.Errorf("%w: an empty or malformed prefix", ErrInvalid)
		}
		if p.Addr().Is4In6() || p.Addr().Zone() != "" {
			return nil, fmt.Errorf("%w: %s: write IPv4 routes as IPv4, without a zone", ErrInvalid, p)
		}
		if m := p.Masked(); m != p {
			return nil, fmt.Errorf("%w: %s has host bits set: did you mean %s?", ErrInvalid, p, m)
		}
		switch {
		case p == ExitV4:
			exit4 = true
		case p == ExitV6:
			exit6 = true
		case p.Overlaps(MeshV4) || p.Overlaps(MeshV6):
			return nil, fmt.Errorf("%w: %s overlaps the mesh's own addresses (%s, %s)", ErrInvalid, p, MeshV4, MeshV6)
		default:
			for _, u := range unroutable {
				if p.Overlaps(u.p) {
					return nil, fmt.Errorf("%w: %s overlaps %s addresses (%s), which no router can forward", ErrInvalid, p, u.what, u.p)
				}
			}
		}
		out = append(out, p)
	}
	if exit4 != exit6 {
		return nil, fmt.Errorf("%w: an exit node advertises both %s and %s, not one of them", ErrInvalid, ExitV4, ExitV6)
	}
	Sort(out)
	return slices.Compact(out), nil
}

// Sort orders prefixes: IPv4 before IPv6, then by address, then shorter
// (wider) first.
func Sort(ps []netip.Prefix) {
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
}

// Enabled returns the routes in force: advertised and approved (an
// approved route the node no longer advertises carries nothing, and
// comes back into force if the node advertises it again). Both inputs
// must be sorted without duplicates (as Check returns them).
func Enabled(advertised, approved []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range advertised {
		if slices.Contains(approved, p) {
			out = append(out, p)
		}
	}
	return out
}

// Exit reports whether ps holds the exit-node routes.
func Exit(ps []netip.Prefix) bool {
	return slices.Contains(ps, ExitV4) && slices.Contains(ps, ExitV6)
}

// Format writes prefixes as a comma-separated list (what Parse reads).
func Format(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}
