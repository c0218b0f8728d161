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
// defined groups and defined tags), and the coordinator asks AutoApproves
// about each route a node advertises. Tailscale's documented forms:
//
//	"autoApprovers": {
//		"routes":   {"10.0.0.0/16": ["group:net", "tag:router"]},
//		"exitNode": ["tag:exit"],
//	}

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
	ps.warnf(v.StartOffset, "approved routes are listed by warren-coordinator routes list",
		"autoApprovers: approves the routes nodes advertise, but Warren nodes do not forward subnet or exit traffic yet")
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

// AutoApproves reports whether the policy's autoApprovers approve route
// for a node owned by o, as Tailscale does: a subnet route is approved
// when some entry of routes has a prefix that contains it (equal or
// wider) and lists o (a tagged node by one of its tags; a user's node by
// the user's login or a group the user is in); the exit-node routes
// (0.0.0.0/0 and ::/0) are approved only through exitNode, never through
// routes. Without an autoApprovers section nothing is approved.
func (p *Policy) AutoApproves(o Owner, route netip.Prefix) bool {
	aa := p.ext.autoApprovers
	if aa == nil || !route.IsValid() {
		return false
	}
	if route.Bits() == 0 {
		return p.approverMatches(o, aa.ExitNode)
	}
	for _, ra := range aa.Routes {
		if ra.Prefix.Bits() <= route.Bits() && ra.Prefix.Contains(route.Addr()) &&
			p.approverMatches(o, ra.Approvers) {
			return true
		}
	}
	return false
}

// approverMatches reports whether o is one of approvers: by a tag for a
// tagged node, by login or group for a user's node (a tagged node is
// owned by its tags, not by the user who registered it).
func (p *Policy) approverMatches(o Owner, approvers []string) bool {
	login := strings.ToLower(o.Login)
	tagged := len(o.Tags) > 0
	for _, a := range approvers {
		switch {
		case strings.HasPrefix(a, "tag:"):
			if tagged && contains(o.Tags, a) {
				return true
			}
		case strings.HasPrefix(a, "group:"):
			if !tagged && login != "" && p.inGroup(login, o.Groups, a) {
				return true
			}
		default:
			if !tagged && login != "" && login == a {
				return true
			}
		}
	}
	return false
}
