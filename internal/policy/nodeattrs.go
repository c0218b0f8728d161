package policy

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/tailscale/hujson"
)

// nodeAttrs, as in Tailscale: attributes ("attr") and application
// capabilities ("app") applied to the nodes a target selects. Warren
// honours two attributes of its own, AttrFlowLogsOff and AttrSSHRecord
// (sshcompile.go), and none of
// Tailscale's attributes yet (it has no equivalent for
// funnel, MagicDNS tweaks, mullvad, drive sharing...), so each one is
// stored, delivered to the targeted nodes in their own netmap record
// (NodeCapMap, wire.Node.CapMap, as Tailscale's tailcfg.Node.CapMap), and
// named in a warning ("delivered to the targeted nodes, has no effect in
// Warren yet"), never dropped silently. Unknown attributes and
// capabilities are carried as written.

// NodeAttr is one entry of the nodeAttrs section.
type NodeAttr struct {
	Target []string                     // selectors as written
	Attr   []string                     // attributes as written
	App    map[string][]json.RawMessage // capability -> its values, as JSON

	sels []selector
}

// NodeAttrs returns the nodeAttrs section in file order. The caller must
// not modify it.
func (p *Policy) NodeAttrs() []NodeAttr { return p.ext.nodeAttrs }

// NodeAttrsFor returns the attributes of every nodeAttrs entry whose
// target selects n, in file order without duplicates.
func (p *Policy) NodeAttrsFor(n *Node) []string {
	if len(p.ext.nodeAttrs) == 0 {
		return nil
	}
	s := p.nodeSubject(n)
	var out []string
	for _, na := range p.ext.nodeAttrs {
		for _, sel := range na.sels {
			if sel.matches(s) {
				for _, a := range na.Attr {
					if !contains(out, a) {
						out = append(out, a)
					}
				}
				break
			}
		}
	}
	return out
}

// NodeCapMap returns what the nodeAttrs entries whose target selects n
// give it, in the form the netmap delivers (wire.Node.CapMap, as
// Tailscale's tailcfg.Node.CapMap): each attribute a key with no values,
// each capability a key with its values, those of several entries
// appended in file order. It returns nil when no entry selects n. The
// values are shared and must not be modified.
func (p *Policy) NodeCapMap(n *Node) map[string][]json.RawMessage {
	if len(p.ext.nodeAttrs) == 0 {
		return nil
	}
	s := p.nodeSubject(n)
	var out map[string][]json.RawMessage
	for _, na := range p.ext.nodeAttrs {
		if !slices.ContainsFunc(na.sels, func(sel selector) bool { return sel.matches(s) }) {
			continue
		}
		if out == nil {
			out = map[string][]json.RawMessage{}
		}
		for _, a := range na.Attr {
			if _, ok := out[a]; !ok {
				out[a] = nil
			}
		}
		for name, vals := range na.App {
			out[name] = append(out[name], vals...)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// warrenAttrs are the node attributes Warren gives a meaning to. An
// attribute listed here is accepted without a warning.
var warrenAttrs = map[string]bool{AttrFlowLogsOff: true, AttrSSHRecord: true}

var nodeAttrFields = []string{"target", "attr", "app", "ipPool"}

func (ps *parser) nodeAttrs(v hujson.Value) {
	a, ok := ps.array(v, "nodeAttrs")
	if !ok {
		return
	}
	warned := map[string]bool{}
	for i, e := range a.Elements {
		what := "nodeAttrs entry #" + strconv.Itoa(i+1)
		nerr := len(ps.errs) + ps.dropped
		obj, ok := ps.object(e, what)
		if !ok {
			continue
		}
		f := ps.fields(obj, what, nodeAttrFields, nil)
		na := NodeAttr{}
		// Tailscale accepts an entry that targets nothing or sets
		// nothing; so does Warren, with a warning.
		if tv, ok := f["target"]; ok && !isNull(tv) {
			ss, vals := ps.strs(tv, "target")
			for j, s := range ss {
				if sel, ok := ps.selector(s, vals[j], 0, roleSrc); ok {
					na.Target = append(na.Target, s)
					na.sels = append(na.sels, sel)
				}
			}
		}
		if av, ok := f["attr"]; ok && !isNull(av) {
			ss, vals := ps.strs(av, "attr")
			for j, s := range ss {
				if s == "" || strings.TrimSpace(s) != s {
					ps.errorf(vals[j].StartOffset, "write the attribute's name, e.g. \"funnel\"", "invalid attribute %q", s)
					continue
				}
				na.Attr = append(na.Attr, s)
				if !warrenAttrs[s] && !warned["attr "+s] {
					warned["attr "+s] = true
					ps.warnf(vals[j].StartOffset, "the targeted nodes receive it in their netmap (CapMap); Warren's node does not act on it yet",
						"nodeAttrs: delivered to the targeted nodes, has no effect in Warren yet: %s", s)
				}
			}
		}
		if apv, ok := f["app"]; ok && !isNull(apv) {
			na.App = ps.nodeAppCaps(apv, warned)
		}
		pools := false
		if pv, ok := f["ipPool"]; ok && !isNull(pv) {
			pools = ps.ipPools(pv)
		}
		switch {
		case len(na.Target) == 0 && len(ps.errs)+ps.dropped == nerr:
			ps.warnf(e.StartOffset, "name the users, groups or tags it applies to, or remove it", "%s has no target: it applies to no node", what)
		case len(na.Attr) == 0 && len(na.App) == 0 && !pools && len(ps.errs)+ps.dropped == nerr:
			ps.warnf(e.StartOffset, `add "attr": [...], or remove it`, "%s sets no attribute", what)
		}
		ps.p.ext.nodeAttrs = append(ps.p.ext.nodeAttrs, na)
	}
}

// reservedPools are Tailscale's reserved ranges inside 100.64.0.0/10,
// which it refuses as an ipPool: the 100.100.100.0/24 service range and
// ChromeOS's 100.115.92.0/23.
var reservedPools = []netip.Prefix{netip.MustParsePrefix("100.100.100.0/24"), netip.MustParsePrefix("100.115.92.0/23")}

// ipPools reads a nodeAttrs ipPool: CIDRs outside Tailscale's reserved
// ranges. Warren assigns mesh addresses itself, so a valid pool is
// accepted with a warning. It reports whether the list names any pool.
func (ps *parser) ipPools(v hujson.Value) bool {
	ss, vals := ps.strs(v, "ipPool")
	for j, s := range ss {
		pfx, hint, err := parsePrefix(s)
		if err != nil {
			ps.errorf(vals[j].StartOffset, hint, "ipPool: %v", err)
			continue
		}
		for _, r := range reservedPools {
			if r.Overlaps(pfx) {
				ps.errorf(vals[j].StartOffset, "choose a pool outside "+r.String(), "IPPool(%s): network within reserved range", pfx)
			}
		}
	}
	if len(ss) > 0 {
		ps.warnf(v.StartOffset, "Warren assigns mesh addresses itself; remove it",
			"nodeAttrs: accepted, has no effect in Warren: ipPool")
	}
	return len(ss) > 0
}

// nodeAppCaps reads a nodeAttrs "app" object: capability name -> array of values, kept
// as JSON.
func (ps *parser) nodeAppCaps(v hujson.Value, warned map[string]bool) map[string][]json.RawMessage {
	out := map[string][]json.RawMessage{}
	for _, m := range ps.entries(v, "app") {
		name := m.Name.Value.(hujson.Literal).String()
		if !validCapName(name) {
			ps.errorf(m.Name.StartOffset, "capability names look like example.com/cap/name", "invalid capability name %q", name)
			continue
		}
		a, ok := ps.array(m.Value, "the values of "+name)
		if !ok {
			continue
		}
		vals := make([]json.RawMessage, 0, len(a.Elements))
		for _, e := range a.Elements {
			c := e.Clone()
			c.Standardize()
			c.Minimize()
			vals = append(vals, json.RawMessage(c.Pack()))
		}
		out[name] = vals
		if !warned["app "+name] {
			warned["app "+name] = true
			ps.warnf(m.Name.StartOffset, "the targeted nodes receive it in their netmap (CapMap); Warren's node does not act on it yet",
				"nodeAttrs: delivered to the targeted nodes, has no effect in Warren yet: %s", name)
		}
	}
	return out
}

// validCapName reports whether s looks like a capability name: a domain,
// a slash, a path, no spaces.
func validCapName(s string) bool {
	if len(s) > 256 || !strings.Contains(s, "/") || strings.HasPrefix(s, "/") {
		return false
	}
	for _, c := range s {
		if c <= ' ' || c == 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
