package policy

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/tailscale/hujson"
)

// The grants section: Tailscale's newer rule syntax. A grant names its
// sources and destinations (without ports) and what it grants:
//
//   - "ip": network access, a list of "*", "PORTS", "PROTO:*" or
//     "PROTO:PORTS" where PORTS is one port or one range "first-last" and
//     PROTO a protocol name or IANA number. This is Tailscale's
//     ProtoPortRange (tailcfg): "*" and a bare port or range mean TCP,
//     UDP and ICMP, like an acls rule without "proto"; a port list with
//     commas and port 0 are errors. Each protocol of a grant compiles to
//     one rule of the same kind as an acls entry, so a grant and the acls
//     rule it rewrites produce the same packet filters.
//   - "app": application capabilities, a map from capability name to a
//     list of JSON values, delivered by Tailscale to the destination
//     nodes. Warren delivers them the same way (capgrants.go), in the
//     destination's packet filter as capability rules that allow no
//     packet; Warren's node does not act on them yet, and Parse warns so.
//   - "via": tags of subnet routers or exit nodes: the grant's
//     destinations are reached only through routers with one of those
//     tags (routes.go), never directly; its destinations must be
//     addresses, CIDRs, host aliases, "*" or autogroup:internet.
//   - "srcPosture": as on acls rules; defaultSrcPosture applies to grants
//     without it too.

var grantFields = []string{"src", "dst", "ip", "app", "via", "srcPosture"}

// AppGrant is the application capabilities one grant gives its sources
// on its destinations, as written.
type AppGrant struct {
	Index int                          // position in grants, from 0
	Line  int                          // of the grant
	Src   []string                     // as written
	Dst   []string                     // as written
	Caps  map[string][]json.RawMessage // capability name -> values, compact JSON

	r *rule // its sources and destinations; nil when Caps is empty
}

// AppGrants returns the application capabilities of the grants section,
// in file order. Graph.Filter delivers them to their destination nodes.
func (p *Policy) AppGrants() []AppGrant {
	out := make([]AppGrant, len(p.appGrants))
	for i, a := range p.appGrants {
		out[i] = a
		out[i].Src = slices.Clone(a.Src)
		out[i].Dst = slices.Clone(a.Dst)
		out[i].Caps = make(map[string][]json.RawMessage, len(a.Caps))
		for k, vs := range a.Caps {
			cp := make([]json.RawMessage, len(vs))
			for j, v := range vs {
				cp[j] = slices.Clone(v)
			}
			out[i].Caps[k] = cp
		}
	}
	return out
}

func (ps *parser) grants(v hujson.Value, defaults []int, hasDefault bool) {
	a, ok := ps.array(v, "grants")
	if !ok {
		return
	}
	if len(a.Elements)+len(ps.p.rules) > maxRules {
		ps.errorf(v.StartOffset, "merge grants that share sources or destinations", "%d acls rules and grants; the limit is %d", len(a.Elements)+len(ps.p.rules), maxRules)
		return
	}
	for i, e := range a.Elements {
		rs := ps.grant(i, e, defaults, hasDefault)
		if len(ps.p.rules)+len(rs) > maxRules {
			ps.errorf(e.StartOffset, "merge grants, or list fewer protocols in each", "grants compile to more than %d rules", maxRules)
			return
		}
		ps.p.rules = append(ps.p.rules, rs...)
	}
}

// grant parses one grant into one rule per protocol of its "ip".
func (ps *parser) grant(i int, v hujson.Value, defaults []int, hasDefault bool) []*rule {
	what := fmt.Sprintf("grant #%d", i+1)
	obj, ok := ps.object(v, what)
	if !ok {
		return nil
	}
	f := ps.fields(obj, what, grantFields, nil)
	nerr := len(ps.errs) + ps.dropped

	var srcs []selector
	var srcVals []hujson.Value
	var srcText []string
	if sv, ok := f["src"]; !ok {
		ps.errorf(v.StartOffset, `add "src": [...]`, "%s has no src", what)
	} else {
		ss, vals := ps.strs(sv, "src")
		if a, ok := sv.Value.(*hujson.Array); ok && len(a.Elements) == 0 {
			// Tailscale accepts it (recorded: conformance grant-h4); it
			// grants nothing.
			ps.warnf(sv.StartOffset, "list at least one source, or remove the grant", "%s: src is empty: the grant allows nothing", what)
		}
		for j, s := range ss {
			if sel, ok := ps.selector(s, vals[j], 0, roleSrc); ok {
				for _, x := range ps.ipsetSelectors(sel, vals[j]) {
					srcs = append(srcs, x)
					srcVals = append(srcVals, vals[j])
				}
				srcText = append(srcText, s)
			}
		}
	}

	var dsts []selector
	var dstText, dstNames []string // as written; per entry of dsts
	if dv, ok := f["dst"]; !ok {
		ps.errorf(v.StartOffset, `add "dst": [...]`, "%s has no dst", what)
	} else {
		ds, vals := ps.strs(dv, "dst")
		if a, ok := dv.Value.(*hujson.Array); ok && len(a.Elements) == 0 {
			// Tailscale accepts it (recorded: conformance grant-h5); it
			// grants nothing.
			ps.warnf(dv.StartOffset, "list at least one destination, or remove the grant", "%s: dst is empty: the grant allows nothing", what)
		}
		for j, s := range ds {
			if s == "0.0.0.0/0" || s == "::/0" {
				// Tailscale refuses these in a grant (recorded answers of
				// its control plane).
				ps.errorf(vals[j].StartOffset, `to allow all IP addresses, use "*" or "autogroup:internet"`,
					"grant destination %q is every address", s)
				continue
			}
			if _, _, _, hasPorts := splitHostPorts(s); hasPorts && !looksLikeAddress(s) {
				ps.errorf(vals[j].StartOffset, `a grant's destinations have no ports; put them in "ip", e.g. "ip": ["tcp:22"]`,
					"grant destination %q has ports", s)
				continue
			}
			if sel, ok := ps.selector(s, vals[j], 0, roleDst); ok {
				for _, x := range ps.ipsetSelectors(sel, vals[j]) {
					dsts = append(dsts, x)
					dstNames = append(dstNames, s)
				}
				dstText = append(dstText, s)
			}
		}
	}

	var via []string
	if vv, ok := f["via"]; ok {
		via = ps.via(vv, what, dsts)
	}

	byProto := map[int][]portRange{} // -1: the default protocols
	if iv, ok := f["ip"]; ok {
		ips, vals := ps.strs(iv, "ip")
		if a, ok := iv.Value.(*hujson.Array); ok && len(a.Elements) == 0 {
			ps.errorf(iv.StartOffset, `write "*" for every port, or list ports such as "tcp:443"`, "ip is empty")
		}
		for j, s := range ips {
			proto, pr, hint, err := parseProtoPorts(s)
			if err != nil {
				ps.errorf(vals[j].StartOffset, hint, "%s: %v", what, err)
				continue
			}
			byProto[proto] = append(byProto[proto], pr)
		}
	}

	var app *AppGrant
	if av, ok := f["app"]; ok {
		app = ps.appCaps(av, what)
		if app != nil && len(app.Caps) > 0 {
			for k, name := range dstNames {
				if name == "autogroup:internet" {
					ps.errorf(v.StartOffset, "give the internet its own grant, with ip only", "%s: app capabilities cannot go to autogroup:internet (destination %d)", what, k+1)
					break
				}
			}
			// Tailscale checks autogroup:self's sources for app grants too.
			ps.checkSelfSources(&rule{src: srcs, dst: selfDsts(dsts)}, srcVals, false)
		}
	}
	ipEmpty := true
	if iv, ok := f["ip"]; ok {
		if a, ok := iv.Value.(*hujson.Array); !ok || len(a.Elements) > 0 {
			ipEmpty = false
		}
	}
	if ipEmpty && (app == nil || len(app.Caps) == 0) {
		ps.errorf(v.StartOffset, `add "ip": ["*"] for network access, or "app" for application capabilities`, "%s grants nothing: ip and app cannot both be empty", what)
	}

	var postures []int
	if pv, ok := f["srcPosture"]; ok {
		postures = ps.postureList(pv, "srcPosture")
	} else if hasDefault {
		postures = defaults
	}

	if len(ps.errs)+ps.dropped > nerr {
		return nil
	}
	if app != nil {
		line, _ := ps.position(v.StartOffset)
		app.Index, app.Line, app.Src, app.Dst = i, line, srcText, dstText
		if len(app.Caps) > 0 {
			app.r = ps.capRule(i, v.StartOffset, compact(v), srcs, dsts, dstNames, postures, len(byProto) > 0)
			app.r.via = via // capDsts: delivered to no node
		}
		ps.p.appGrants = append(ps.p.appGrants, *app)
		ps.warnf(f["app"].StartOffset, "the destination nodes receive them in their packet filter, for applications that read them",
			"%s: app capabilities are delivered to the destination nodes; Warren's node does not act on them yet", what)
	}

	protos := make([]int, 0, len(byProto))
	for p := range byProto {
		protos = append(protos, p)
	}
	sort.Ints(protos)
	// Each protocol repeats the destinations: count them like IP set
	// expansions, to bound the work a small file can cause.
	if extra := len(dsts) * (len(protos) - 1); extra > 0 {
		if ps.expanded += extra; ps.expanded > maxIPSetExpansion {
			ps.errorf(v.StartOffset, "list fewer protocols, or split the grant",
				"the grants stand for more than %d destinations in all", maxIPSetExpansion)
			return nil
		}
	}
	var out []*rule
	for _, proto := range protos {
		ports := mergeRanges(byProto[proto])
		r := &rule{index: i, section: "grants", off: v.StartOffset, text: compact(v), src: srcs, postures: postures, via: via}
		if proto >= 0 {
			r.protos = []int{proto}
		}
		for k, sel := range dsts {
			r.dst = append(r.dst, dstEntry{sel: sel, ports: slices.Clone(ports), off: v.StartOffset, text: dstNames[k]})
		}
		n := len(ps.errs) + ps.dropped
		ps.checkSelfSources(r, srcVals, false)
		if len(ps.errs)+ps.dropped > n {
			return nil
		}
		r.finish(ps)
		out = append(out, r)
	}
	return out
}

// parseProtoPorts parses one entry of a grant's "ip". proto is -1 for the
// default protocols (TCP, UDP and ICMP).
func parseProtoPorts(s string) (proto int, ports portRange, hint string, err error) {
	const form = `write "*", a port "443", a range "8000-8999", or a protocol and ports: "tcp:443", "udp:53", "icmp:*"`
	if s == "*" {
		return -1, allPorts[0], "", nil
	}
	protoStr, portStr := "*", s
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		protoStr, portStr = s[:i], s[i+1:]
	}
	proto = -1
	if protoStr != "*" {
		ps, phint, perr := parseProto(protoStr)
		if perr != nil {
			return 0, portRange{}, phint, perr
		}
		proto = ps[0]
	}
	switch {
	case portStr == "*":
		return proto, allPorts[0], "", nil
	case strings.Contains(portStr, ","):
		return 0, portRange{}, "list each port or range as its own entry of ip", fmt.Errorf("%q lists several ports; each ip entry has one port or range", s)
	}
	lo, hi, isRange := strings.Cut(portStr, "-")
	first, err1 := parsePort(lo)
	last := first
	var err2 error
	if isRange {
		last, err2 = parsePort(hi)
	}
	switch {
	case err1 != nil || err2 != nil:
		return 0, portRange{}, form, fmt.Errorf("invalid ip entry %q", s)
	case first == 0:
		return 0, portRange{}, `port 0 is not a port; write "*" for every port`, fmt.Errorf("invalid ip entry %q: port 0", s)
	case first > last:
		return 0, portRange{}, fmt.Sprintf("did you mean %d-%d?", last, first), fmt.Errorf("port range %q ends before it starts", portStr)
	case proto >= 0 && !hasPorts(proto):
		return 0, portRange{}, fmt.Sprintf("write %q", protoStr+":*"), fmt.Errorf("protocol %s has no ports", protoStr)
	}
	return proto, portRange{first, last}, "", nil
}

// maxAppValues caps the values one grant's app capabilities may hold.
const maxAppValues = 1024

// appCaps reads a grant's "app": capability name -> list of JSON values.
func (ps *parser) appCaps(v hujson.Value, what string) *AppGrant {
	caps := map[string][]json.RawMessage{}
	n := 0
	for _, m := range ps.entries(v, what+" app") {
		name := m.Name.Value.(hujson.Literal).String()
		if !validCapForm(name) {
			ps.errorf(m.Name.StartOffset, `capability names look like "example.com/cap/name"`, "invalid capability name %q: it must have the form {domain}/{path}", name)
			continue
		}
		if domain, _, _ := strings.Cut(name, "/"); domain == "tailscale.com" && !tailscaleCaps[name] {
			ps.errorf(m.Name.StartOffset, "use your own domain for your own capabilities",
				"capability %q is in the tailscale.com domain, which only Tailscale's own capabilities may use", name)
			continue
		}
		a, ok := ps.array(m.Value, "capability "+strconv.Quote(name))
		if !ok {
			continue
		}
		vals := make([]json.RawMessage, 0, len(a.Elements))
		for _, e := range a.Elements {
			if n++; n > maxAppValues {
				ps.errorf(e.StartOffset, "list fewer values", "%s app has more than %d values", what, maxAppValues)
				return nil
			}
			c := e.Clone()
			c.Standardize()
			c.Minimize()
			vals = append(vals, json.RawMessage(c.Pack()))
		}
		caps[name] = vals
	}
	return &AppGrant{Caps: caps}
}

// selfDsts returns the destinations among dsts that are autogroup:self,
// as a rule's destination entries (for checkSelfSources).
func selfDsts(dsts []selector) []dstEntry {
	var out []dstEntry
	for _, d := range dsts {
		if d.kind == selSelf {
			out = append(out, dstEntry{sel: d})
		}
	}
	return out
}

// validCapForm reports whether name has Tailscale's form for an app
// capability, {domain}/{path}: a host name with a dot, a slash, and a
// non-empty path, with no scheme, spaces or control characters.
func validCapForm(name string) bool {
	domain, path, ok := strings.Cut(name, "/")
	if !ok || path == "" || !strings.Contains(domain, ".") || strings.HasPrefix(path, "/") {
		return false
	}
	for _, c := range domain {
		if !(c == '.' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return !strings.ContainsAny(name, " \t\r\n")
}

// tailscaleCaps are the capabilities in the tailscale.com domain that
// Tailscale's control plane accepts in grants (its recorded answers, and
// the capabilities of its open-source apps); it refuses others there.
var tailscaleCaps = map[string]bool{
	"tailscale.com/cap/drive":      true,
	"tailscale.com/cap/kubernetes": true,
	"tailscale.com/cap/relay":      true,
	"tailscale.com/cap/webui":      true,
	"tailscale.com/cap/tsidp":      true,
	"tailscale.com/cap/secrets":    true,
}

// via reads a grant's "via": a non-empty list of defined tags. A grant
// with via reaches its destinations only through routers, so each must be
// something routers front (addresses, CIDRs, host aliases, "*" or
// autogroup:internet), not nodes named by user, group or tag.
func (ps *parser) via(v hujson.Value, what string, dsts []selector) []string {
	if l, ok := v.Value.(hujson.Literal); ok && l.Kind() == 'n' {
		return nil // null: no via, as in Tailscale
	}
	ss, vals := ps.strs(v, "via")
	if len(ss) == 0 {
		return nil // []: no via, as in Tailscale
	}
	var out []string
	for i, s := range ss {
		sel, ok := ps.selector(s, vals[i], 0, roleSrc)
		if !ok {
			continue
		}
		if sel.kind != selTag {
			ps.errorf(vals[i].StartOffset, `via names the tags of subnet routers or exit nodes, e.g. "tag:router"`,
				"%s: via %q is not a tag", what, s)
			continue
		}
		if !contains(out, sel.name) {
			out = append(out, sel.name)
		}
	}
	for _, d := range dsts {
		switch d.kind {
		case selPrefix, selAll, selInternet, selNone:
		default:
			ps.errorf(v.StartOffset, "give destinations that are nodes a grant of their own without via",
				"%s: via routes to addresses, CIDRs, host aliases, \"*\" or autogroup:internet, not to %s", what, d.text)
			return out
		}
	}
	return out
}
