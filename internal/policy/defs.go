package policy

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/tailscale/hujson"
)

// The definition sections: groups, hosts, tagOwners and postures.

// definedName returns the name of a definition m (a group, tag, posture
// or IP set: kind), reporting it unless it is prefix followed by a valid
// name.
func (ps *parser) definedName(m hujson.ObjectMember, prefix, kind string) (string, bool) {
	name := m.Name.Value.(hujson.Literal).String()
	switch {
	case !strings.HasPrefix(name, prefix):
		ps.errorf(m.Name.StartOffset, prefixHint(prefix, name), "%s name %q must start with %q", kind, name, prefix)
		return name, false
	case !validName(strings.TrimPrefix(name, prefix)):
		ps.errorf(m.Name.StartOffset, nameRules, "invalid %s name %q", kind, name)
		return name, false
	}
	return name, true
}

func (ps *parser) groups(v hujson.Value) {
	for _, m := range ps.entries(v, "groups") {
		name, ok := ps.definedName(m, "group:", "group")
		if !ok {
			continue
		}
		g := &group{name: name, off: m.Name.StartOffset}
		members, vals := ps.strs(m.Value, "group "+name)
		seen := make(map[string]bool, len(members))
		for i, s := range members {
			switch {
			case strings.HasPrefix(s, "group:"):
				ps.errorf(vals[i].StartOffset, "list the members of "+s+" here instead", "nested groups are not supported (%s in %s)", s, name)
			case strings.HasPrefix(s, "tag:"), strings.HasPrefix(s, "autogroup:"):
				ps.errorf(vals[i].StartOffset, "groups hold user logins only; tagged nodes are selected with tag:...", "%s cannot be a member of %s", s, name)
			case !validLogin(s):
				ps.errorf(vals[i].StartOffset, "group members are user logins such as ann@example.com", "invalid group member %q in %s", s, name)
			default:
				login := strings.ToLower(s)
				if seen[login] {
					continue
				}
				seen[login] = true
				g.members = append(g.members, login)
				ps.p.userGrp[login] = append(ps.p.userGrp[login], name)
			}
		}
		ps.p.groups[name] = g
	}
}

func (ps *parser) hosts(v hujson.Value) {
	for _, m := range ps.entries(v, "hosts") {
		name := m.Name.Value.(hujson.Literal).String()
		if !validName(name) || strings.Contains(name, "@") {
			ps.errorf(m.Name.StartOffset, nameRules, "invalid host alias %q", name)
			continue
		}
		if _, err := netip.ParseAddr(name); err == nil {
			ps.errorf(m.Name.StartOffset, "choose a name that is not an address", "host alias %q looks like an IP address", name)
			continue
		}
		s, ok := ps.str(m.Value, "host "+name)
		if !ok {
			continue
		}
		pfx, hint, err := parsePrefix(s)
		if err != nil {
			ps.errorf(m.Value.StartOffset, hint, "host %s: %v", name, err)
			continue
		}
		ps.p.hosts[name] = pfx
	}
}

// parsePrefix parses an IP address (as a single-address prefix) or a
// CIDR, returning a hint with any error.
func parsePrefix(s string) (netip.Prefix, string, error) {
	if strings.Contains(s, "%") {
		return netip.Prefix{}, "remove the zone (%...)", fmt.Errorf("address %q has a zone", s)
	}
	if strings.Contains(s, "/") {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, "write a CIDR such as 10.0.0.0/24 or fd00::/64", fmt.Errorf("invalid CIDR %q", s)
		}
		if pfx.Addr().Is4In6() && pfx.Bits() >= 96 {
			pfx = netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()-96)
		}
		if m := pfx.Masked(); m != pfx {
			// Which was meant is unknowable, and the network is the
			// broader of the two: name both, suggest neither.
			return netip.Prefix{}, fmt.Sprintf("write %q for the network, or %q for the one address", m.String(), pfx.Addr().String()),
				fmt.Errorf("CIDR %q has bits set after the prefix length", s)
		}
		return pfx, "", nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, "write an address such as 100.64.0.9 or fd7a:115c:a1e0::9", fmt.Errorf("invalid IP address %q", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), "", nil
}

func (ps *parser) tagOwners(v hujson.Value) {
	members := ps.entries(v, "tagOwners")
	// Collect every tag first: owners may be other tags.
	for _, m := range members {
		if name, ok := ps.definedName(m, "tag:", "tag"); ok {
			ps.p.tags[name] = &tagDef{name: name, off: m.Name.StartOffset}
		}
	}
	for _, m := range members {
		name := m.Name.Value.(hujson.Literal).String()
		t := ps.p.tags[name]
		if t == nil {
			continue
		}
		owners, vals := ps.strs(m.Value, "the owners of "+name)
		for i, s := range owners {
			if o, ok := ps.owner(s, vals[i]); ok {
				t.owners = append(t.owners, o)
			}
		}
	}
}

func (ps *parser) postures(v hujson.Value) {
	for _, m := range ps.entries(v, "postures") {
		name, ok := ps.definedName(m, "posture:", "posture")
		if !ok {
			continue
		}
		conds, vals := ps.strs(m.Value, "posture "+name)
		po := &posture{name: name, off: m.Name.StartOffset}
		if len(conds) == 0 && len(vals) == 0 {
			ps.errorf(m.Value.StartOffset, "add conditions such as \"node:os == 'macos'\"", "posture %s has no conditions", name)
		}
		for i, s := range conds {
			c, off, hint, err := parseCond(s)
			if err != nil {
				ps.errorf(at(vals[i], off), hint, "posture %s: %v", name, err)
				continue
			}
			po.conds = append(po.conds, c)
		}
		ps.p.posIdx[name] = len(ps.p.postures)
		ps.p.postures = append(ps.p.postures, po)
	}
}

// postureList reads a list of posture names (srcPosture or
// defaultSrcPosture) as indexes into p.postures.
func (ps *parser) postureList(v hujson.Value, what string) []int {
	names, vals := ps.strs(v, what)
	out := make([]int, 0, len(names))
	for i, n := range names {
		idx, ok := ps.p.posIdx[n]
		if !ok {
			hint := ps.suggest(n, "postures", `define it in "postures"`)
			if !strings.HasPrefix(n, "posture:") {
				hint = fmt.Sprintf("posture names start with \"posture:\", e.g. %q", "posture:"+n)
			}
			ps.errorf(vals[i].StartOffset, hint, "unknown posture %q in %s", n, what)
			continue
		}
		if !containsInt(out, idx) {
			out = append(out, idx)
		}
	}
	return out
}

func containsInt(list []int, x int) bool {
	for _, y := range list {
		if y == x {
			return true
		}
	}
	return false
}
