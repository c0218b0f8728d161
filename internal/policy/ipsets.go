package policy

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/tailscale/hujson"
)

// The ipsets section: Tailscale's named address sets
// (tailscale.com/kb/1387/ipsets). Each "ipset:NAME" is a list of
// operations applied in order to an empty set:
//
//	"10.0.0.0/8" or "add 10.0.0.0/8"   add an address or CIDR
//	"add host:db" / "add db"           add a host alias's address
//	"add ipset:other"                  add another (earlier or later) IP set
//	"remove 10.1.0.0/16"               take addresses out again
//	"add autogroup:internet"           the internet of exit nodes
//
// Tags, users, groups and other autogroups cannot be in an IP set, and
// sets may not refer to each other in a cycle, as in Tailscale.
// autogroup:internet adds nothing (with a warning): an IP set is plain
// addresses, and the internet *through exit nodes* cannot be one without
// granting more or less than Tailscale (name autogroup:internet directly
// as a destination instead).
// An IP set stands for its addresses wherever a host alias may be
// written: "ipset:NAME" as a source, and "ipset:NAME:PORTS" or (in a
// grant) "ipset:NAME" as a destination.

// maxIPSetPrefixes caps the prefixes one IP set may resolve to.
const maxIPSetPrefixes = 4096

type ipsetDef struct {
	name     string
	off      int
	ops      []hujson.Value
	prefixes []netip.Prefix // resolved
	state    uint8          // 0: not resolved, 1: resolving, 2: done
}

func (ps *parser) ipsets(v hujson.Value) {
	members := ps.entries(v, "ipsets")
	for _, m := range members {
		name, ok := ps.definedName(m, "ipset:", "IP set")
		if !ok {
			continue
		}
		a, ok := ps.array(m.Value, "IP set "+name)
		if !ok {
			continue
		}
		ps.p.ipsets[name] = &ipsetDef{name: name, off: m.Name.StartOffset, ops: a.Elements}
	}
	for _, m := range members {
		if d := ps.p.ipsets[m.Name.Value.(hujson.Literal).String()]; d != nil {
			ps.resolveIPSet(d)
		}
	}
}

// resolveIPSet applies d's operations, resolving the sets it names first.
func (ps *parser) resolveIPSet(d *ipsetDef) []netip.Prefix {
	switch d.state {
	case 1:
		ps.errorf(d.off, "IP sets may not refer to themselves, directly or through others", "IP set %s is part of a cycle", d.name)
		d.state = 2
		return nil
	case 2:
		return d.prefixes
	}
	d.state = 1
	var set []netip.Prefix
	for _, op := range d.ops {
		s, ok := ps.str(op, "each entry of "+d.name)
		if !ok {
			continue
		}
		verb, arg := "add", s
		if v, rest, ok := strings.Cut(s, " "); ok {
			verb, arg = v, strings.TrimSpace(rest)
		}
		if verb != "add" && verb != "remove" {
			ps.errorf(op.StartOffset, `write "add ADDRESS" or "remove ADDRESS"`, "unknown IP set operation %q in %s", verb, d.name)
			continue
		}
		pfxs, ok := ps.ipsetOperand(arg, op, d)
		if !ok {
			continue
		}
		if verb == "add" {
			set = append(set, pfxs...) // normalized before a remove and at the end
		} else {
			set = dropCovered(set)
			for _, r := range pfxs {
				set = removePrefix(set, r)
			}
		}
		if len(set) > maxIPSetPrefixes {
			set = dropCovered(set)
		}
		if len(set) > maxIPSetPrefixes {
			ps.errorf(op.StartOffset, "use wider CIDRs", "IP set %s has more than %d CIDRs", d.name, maxIPSetPrefixes)
			set = nil
			break
		}
	}
	d.prefixes, d.state = dropCovered(set), 2
	return set
}

// ipsetOperand resolves the operand of one IP set operation.
func (ps *parser) ipsetOperand(arg string, v hujson.Value, d *ipsetDef) ([]netip.Prefix, bool) {
	switch {
	case strings.HasPrefix(arg, "ipset:"):
		other, ok := ps.p.ipsets[arg]
		if !ok {
			ps.errorf(v.StartOffset, ps.suggest(arg, "ipsets", `define it in "ipsets"`), "unknown IP set %q in %s", arg, d.name)
			return nil, false
		}
		return ps.resolveIPSet(other), true
	case arg == "autogroup:internet":
		ps.warnf(v.StartOffset, "name autogroup:internet as a destination of its own, or add the CIDRs you mean",
			"autogroup:internet in an IP set adds nothing to %s (Warren reaches the internet through exit nodes only when a rule names autogroup:internet)", d.name)
		return nil, true
	case strings.HasPrefix(arg, "host:"):
		if pfx, ok := ps.p.hosts[strings.TrimPrefix(arg, "host:")]; ok {
			return []netip.Prefix{pfx}, true
		}
		ps.errorf(v.StartOffset, ps.suggest(strings.TrimPrefix(arg, "host:"), "hosts", `define it in "hosts"`), "unknown host %q in %s", arg, d.name)
		return nil, false
	case strings.HasPrefix(arg, "tag:"), strings.HasPrefix(arg, "group:"), strings.HasPrefix(arg, "autogroup:"), arg == "*", strings.Contains(arg, "@"):
		ps.errorf(v.StartOffset, "IP sets hold addresses, CIDRs, hosts, other IP sets and autogroup:internet",
			"%s cannot be in an IP set (%s)", arg, d.name)
		return nil, false
	}
	if pfx, ok := ps.p.hosts[arg]; ok {
		return []netip.Prefix{pfx}, true
	}
	pfx, hint, err := parsePrefix(arg)
	if err != nil {
		if !looksLikeAddress(arg) {
			hint = ps.suggest(arg, "hosts", `write an address, a CIDR, host:NAME or ipset:NAME`)
		}
		ps.errorf(v.StartOffset, hint, "%s: %v", d.name, err)
		return nil, false
	}
	return []netip.Prefix{pfx}, true
}

// removePrefix returns set without the addresses of r.
func removePrefix(set []netip.Prefix, r netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range set {
		switch {
		case p.Addr().Is4() != r.Addr().Is4():
			out = append(out, p)
		case r.Bits() <= p.Bits() && r.Contains(p.Addr()):
			// p is inside r: gone.
		case p.Bits() < r.Bits() && p.Contains(r.Addr()):
			out = append(out, splitOut(p, r)...)
		default:
			out = append(out, p)
		}
	}
	return dedupPrefixes(out)
}

// splitOut returns the prefixes that cover p except r, for r strictly
// inside p: at each length from p's to r's, the half not holding r.
func splitOut(p, r netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	cur := p
	for cur.Bits() < r.Bits() {
		bits := cur.Bits() + 1
		lo := netip.PrefixFrom(cur.Addr(), bits)
		hi := netip.PrefixFrom(withBit(cur.Addr(), cur.Bits()), bits)
		if lo.Contains(r.Addr()) {
			out, cur = append(out, hi), lo
		} else {
			out, cur = append(out, lo), hi
		}
	}
	return out
}

// withBit returns a with bit i (from the most significant, 0-based) set.
func withBit(a netip.Addr, i int) netip.Addr {
	if a.Is4() {
		b := a.As4()
		b[i/8] |= 0x80 >> (i % 8)
		return netip.AddrFrom4(b)
	}
	b := a.As16()
	b[i/8] |= 0x80 >> (i % 8)
	return netip.AddrFrom16(b)
}

// maxIPSetExpansion caps the address selectors all references to IP sets
// expand to, so that a small file cannot name a large set a million times.
const maxIPSetExpansion = 1 << 18

// ipsetSelectors expands sel, when it names an IP set, into one address
// selector per CIDR of the set (none for an empty set).
func (ps *parser) ipsetSelectors(sel selector, v hujson.Value) []selector {
	if sel.kind != selIPSet {
		return []selector{sel}
	}
	d := ps.p.ipsets[sel.name]
	if ps.expanded += len(d.prefixes); ps.expanded > maxIPSetExpansion {
		if ps.expanded-len(d.prefixes) <= maxIPSetExpansion {
			ps.errorf(v.StartOffset, "use fewer or smaller IP sets, or wider CIDRs in them",
				"the rules' references to IP sets stand for more than %d CIDRs in all", maxIPSetExpansion)
		}
		return nil
	}
	out := make([]selector, 0, len(d.prefixes))
	for _, pfx := range d.prefixes {
		out = append(out, selector{kind: selPrefix, name: sel.name, prefix: pfx, text: sel.text})
	}
	return out
}

// ipsetSelector parses "ipset:NAME" in role r.
func (ps *parser) ipsetSelector(s string, r role) (selector, string, error) {
	if r == roleTestSrc || r == roleTestDst {
		return selector{}, "tests take a single address; name a host alias or an IP", fmt.Errorf("a test cannot use an IP set (%s)", s)
	}
	if _, ok := ps.p.ipsets[s]; !ok {
		return selector{}, ps.suggest(s, "ipsets", `define it in "ipsets"`), fmt.Errorf("unknown IP set %q", s)
	}
	return selector{kind: selIPSet, name: s, text: s}, "", nil
}
