package policy

import (
	"errors"
	"net/netip"
	"strings"

	"github.com/tailscale/hujson"
)

// autoApprovers, as in Tailscale: who may advertise a subnet route or an
// exit node and have it approved without an admin. The section is
// validated (prefixes are CIDRs with no host bits; approvers are users,
// defined groups and defined tags) and AutoApproves answers for one node
// and route; the coordinator is what applies it when a node advertises
// routes. Tailscale's documented forms:
//
//	"autoApprovers": {
//		"routes":   {"10.0.0.0/16": ["group:net", "tag:router"]},
//		"exitNode": ["tag:exit"],
//	}
//
// Tailscale's rules (its autoApprovers documentation, and its recorded
// approvals in the conformance suite, cases routes-d* and routes-ea*):
//   - a subnet route is approved when it lies inside (or equals) a prefix
//     of "routes" whose approvers include the node: a tag the node has,
//     or, for a node owned by a user, that user or a group of the user;
//   - an exit route (0.0.0.0/0 or ::/0) is approved only by "exitNode";
//     a "routes" entry for 0.0.0.0/0 or ::/0 does not approve an exit
//     node (recorded: routes-ea6, routes-d6), though it does approve the
//     subnet routes inside it;
//   - a tagged node is owned by its tags: users and groups never approve
//     its routes.

// AutoApprovers is the parsed autoApprovers section.
type AutoApprovers struct {
	// Routes lists, in file order, each route prefix with who may
	// advertise it (or any prefix inside it) unapproved.
	Routes []RouteApprovers
	// ExitNode lists who may advertise an exit node unapproved.
	ExitNode []string
}

// RouteApprovers is one entry of autoApprovers.routes.
type RouteApprovers struct {
	Prefix    netip.Prefix
	Approvers []string // user logins (lowercased), "group:x" or "tag:x"
}

// AutoApprovers returns the autoApprovers section, or nil when the file
// has none. The caller must not modify it.
func (p *Policy) AutoApprovers() *AutoApprovers { return p.ext.autoApprovers }

func (ps *parser) autoApprovers(v hujson.Value) {
	obj, ok := ps.object(v, "autoApprovers")
	if !ok {
		return
	}
	aa := &AutoApprovers{}
	f := ps.fields(obj, "autoApprovers", []string{"routes", "exitNode"}, map[string]string{
		"services": "Warren has no Tailscale Services; remove it",
	})
	if rv, ok := f["routes"]; ok {
		for _, m := range ps.entries(rv, "autoApprovers.routes") {
			name := m.Name.Value.(hujson.Literal).String()
			pfx, hint, err := parsePrefix(name)
			if err == nil && !strings.Contains(name, "/") {
				err, hint = errNotCIDR, "write the route as a CIDR, e.g. "+pfx.String()
			}
			if err != nil {
				ps.errorf(m.Name.StartOffset, hint, "autoApprovers route: %v", err)
				continue
			}
			aa.Routes = append(aa.Routes, RouteApprovers{Prefix: pfx,
				Approvers: ps.approvers(m.Value, "the approvers of "+name)})
		}
	}
	if ev, ok := f["exitNode"]; ok {
		aa.ExitNode = ps.approvers(ev, "autoApprovers.exitNode")
	}
	ps.p.ext.autoApprovers = aa
}

// AutoApproves reports whether the policy's autoApprovers approve route,
// advertised by node n, without an admin (see the rules above). route is
// taken as a prefix (masked); an invalid one is never approved.
func (p *Policy) AutoApproves(n *Node, route netip.Prefix) bool {
	aa := p.ext.autoApprovers
	if aa == nil || n == nil || !route.IsValid() {
		return false
	}
	route = normalRoutes([]netip.Prefix{route})[0]
	s := p.nodeSubject(n)
	if isExitRoute(route) {
		return approves(s, aa.ExitNode)
	}
	for _, ra := range aa.Routes {
		if ra.Prefix.Addr().BitLen() == route.Addr().BitLen() && ra.Prefix.Bits() <= route.Bits() &&
			ra.Prefix.Contains(route.Addr()) && approves(s, ra.Approvers) {
			return true
		}
	}
	return false
}

// approves reports whether one of approvers (logins, "group:x", "tag:x")
// names node s.
func approves(s *subject, approvers []string) bool {
	for _, a := range approvers {
		switch {
		case strings.HasPrefix(a, "tag:"):
			if s.tagged && contains(s.tags, a) {
				return true
			}
		case strings.HasPrefix(a, "group:"):
			if !s.tagged && s.user != "" && contains(s.groups, a) {
				return true
			}
		default:
			if !s.tagged && s.user != "" && s.user == a {
				return true
			}
		}
	}
	return false
}

var errNotCIDR = errors.New("a route is a CIDR, not a single address")

// approvers reads a list of auto-approvers: users, groups and tags.
func (ps *parser) approvers(v hujson.Value, what string) []string {
	ss, vals := ps.strs(v, what)
	out := make([]string, 0, len(ss))
	for i, s := range ss {
		sel, ok := ps.selector(s, vals[i], 0, roleSrc)
		if !ok {
			continue
		}
		switch sel.kind {
		case selUser, selGroup, selTag:
			if !contains(out, sel.name) {
				out = append(out, sel.name)
			}
		default:
			ps.errorf(vals[i].StartOffset, "auto-approvers are users, group:... or tag:...",
				"%s cannot be an auto-approver", s)
		}
	}
	return out
}
