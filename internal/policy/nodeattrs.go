package policy

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/tailscale/hujson"
)

// nodeAttrs, as in Tailscale: attributes ("attr") and application
// capabilities ("app") applied to the nodes a target selects. Warren
// honours none of Tailscale's attributes yet (it has no equivalent for
// funnel, MagicDNS tweaks, mullvad, drive sharing...), so each one is
// stored, listed per node by NodeAttrsFor for the netmap to deliver once
// nodes read them, and named in a warning ("accepted, has no effect in
// Warren"), never dropped silently. Unknown attributes and capabilities
// are carried as written.

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

// warrenAttrs are the node attributes Warren gives a meaning to: none
// yet. An attribute listed here is accepted without a warning.
var warrenAttrs = map[string]bool{}

var nodeAttrFields = []string{"target", "attr", "app", "ipPool"}

func (ps *parser) nodeAttrs(v hujson.Value) {
	a, ok := ps.array(v, "nodeAttrs")
	if !ok {
		return
	}
	warned := map[string]bool{}
	for i, e := range a.Elements {
		what := "nodeAttrs entry #" + strconv.Itoa(i+1)
		obj, ok := ps.object(e, what)
		if !ok {
			continue
		}
		f := ps.fields(obj, what, nodeAttrFields, nil)
		na := NodeAttr{}
		if tv, ok := f["target"]; !ok {
			ps.errorf(e.StartOffset, `add "target": ["tag:..."]`, "%s has no target", what)
		} else {
			ss, vals := ps.strs(tv, "target")
			if len(ss) == 0 && len(vals) == 0 {
				ps.errorf(tv.StartOffset, "name the users, groups or tags the attributes apply to", "%s has an empty target", what)
			}
			for j, s := range ss {
				if sel, ok := ps.selector(s, vals[j], 0, roleSrc); ok {
					na.Target = append(na.Target, s)
					na.sels = append(na.sels, sel)
				}
			}
		}
		_, hasAttr := f["attr"]
		_, hasApp := f["app"]
		if !hasAttr && !hasApp {
			ps.errorf(e.StartOffset, `add "attr": ["..."]`, "%s has no attr or app", what)
		}
		if av, ok := f["attr"]; ok {
			ss, vals := ps.strs(av, "attr")
			for j, s := range ss {
				if s == "" || strings.TrimSpace(s) != s {
					ps.errorf(vals[j].StartOffset, "write the attribute's name, e.g. \"funnel\"", "invalid attribute %q", s)
					continue
				}
				na.Attr = append(na.Attr, s)
				if !warrenAttrs[s] && !warned["attr "+s] {
					warned["attr "+s] = true
					ps.warnf(vals[j].StartOffset, "Warren stores it (NodeAttrsFor lists it per node) but nothing acts on it yet",
						"nodeAttrs: accepted, has no effect in Warren: %s", s)
				}
			}
		}
		if apv, ok := f["app"]; ok {
			na.App = ps.appCaps(apv, warned)
		}
		if pv, ok := f["ipPool"]; ok {
			ps.strs(pv, "ipPool")
			ps.warnf(pv.StartOffset, "Warren assigns mesh addresses itself; remove it",
				"nodeAttrs: accepted, has no effect in Warren: ipPool")
		}
		ps.p.ext.nodeAttrs = append(ps.p.ext.nodeAttrs, na)
	}
}

// appCaps reads an "app" object: capability name -> array of values, kept
// as JSON.
func (ps *parser) appCaps(v hujson.Value, warned map[string]bool) map[string][]json.RawMessage {
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
			ps.warnf(m.Name.StartOffset, "Warren stores it (NodeAttrsFor lists it per node) but nothing acts on it yet",
				"nodeAttrs: accepted, has no effect in Warren: %s", name)
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
