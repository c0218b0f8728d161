package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tailscale/hujson"

	"github.com/warrenmesh/warren/internal/wire"
)

// rule is one compiled acls entry.
type rule struct {
	index    int    // position in acls (or grants), from 0
	section  string // "" for acls, "grants" for a grant
	off      int
	text     string // the rule as written, compacted
	ref      string // its id in filter rules and flow logs: "acls[3]", "grants[0]", "default"
	src      []selector
	dst      []dstEntry
	protos   []int // nil: TCP, UDP and ICMP
	postures []int // any one must hold; nil: none required
	when     *window
	mfa      time.Duration // 0: not required

	conditional  bool           // postures or mfa: only nodes can satisfy it
	srcLiterals  []netip.Prefix // IP, CIDR and host sources (and meshRanges for *); nil when conditional
	srcAll       bool           // literals cover every node's addresses ("*" or autogroup:danger-all)
	srcHasPrefix bool           // some source is an IP, CIDR or host
	hasSelf      bool           // some destination is autogroup:self
	srcStar      bool           // "*" is a source (and not conditional): Graph adds the mesh's subnet routes
	via          []string       // a grant's "via" tags: its destinations only through these routers
}

type dstEntry struct {
	sel   selector
	ports []portRange // sorted, merged
	off   int
	text  string
}

type portRange struct{ first, last uint16 }

var allPorts = []portRange{{0, 65535}}

var ruleFields = []string{"action", "src", "dst", "proto", "srcPosture", "when", "mfa", "users", "ports"}

var ruleFieldHints = map[string]string{}

// legacyField renames Tailscale's legacy rule fields, "users" (= "src")
// and "ports" (= "dst"), in f. Tailscale accepts either spelling but not
// both in one rule; so does Warren.
func (ps *parser) legacyField(f map[string]hujson.Value, legacy, name, what string) {
	v, ok := f[legacy]
	if !ok {
		return
	}
	delete(f, legacy)
	if _, both := f[name]; both {
		ps.errorf(v.StartOffset, fmt.Sprintf("%q is the legacy name of %q; keep one of them", legacy, name),
			"%s has both %q and %q", what, legacy, name)
		return
	}
	f[name] = v
}

func (ps *parser) acls(v hujson.Value, defaults []int, hasDefault bool) {
	a, ok := ps.array(v, "acls")
	if !ok {
		return
	}
	if len(a.Elements) > maxRules {
		ps.errorf(v.StartOffset, "merge rules that share sources or destinations", "%d rules; the limit is %d", len(a.Elements), maxRules)
		return
	}
	for i, e := range a.Elements {
		if r := ps.rule(i, e, defaults, hasDefault); r != nil {
			ps.p.rules = append(ps.p.rules, r)
		}
	}
}

// compact returns v as minimal JSON, shortened for messages.
func compact(v hujson.Value) string {
	c := v.Clone()
	c.Minimize()
	s := string(c.Pack())
	if len(s) > 300 {
		s = s[:297] + "..."
	}
	return s
}

func (ps *parser) rule(i int, v hujson.Value, defaults []int, hasDefault bool) *rule {
	obj, ok := ps.object(v, fmt.Sprintf("acls rule #%d", i+1))
	if !ok {
		return nil
	}
	what := fmt.Sprintf("acls rule #%d", i+1)
	f := ps.fields(obj, what, ruleFields, ruleFieldHints)
	ps.legacyField(f, "users", "src", what)
	ps.legacyField(f, "ports", "dst", what)
	nerr := len(ps.errs) + ps.dropped
	r := &rule{index: i, off: v.StartOffset, text: compact(v)}

	if av, ok := f["action"]; !ok {
		ps.errorf(v.StartOffset, `add "action": "accept"`, "%s has no action", what)
	} else if s, ok := ps.str(av, "action"); ok && s != "accept" {
		hint := `the only action is "accept"`
		if s == "deny" || s == "drop" {
			hint = "everything no rule accepts is denied; remove this rule and narrow the rules that accept"
		}
		ps.errorf(av.StartOffset, hint, "unsupported action %q", s)
	}

	var srcVals []hujson.Value // where each of r.src is written
	if sv, ok := f["src"]; !ok {
		ps.errorf(v.StartOffset, `add "src": [...]`, "%s has no src", what)
	} else {
		ss, vals := ps.strs(sv, "src")
		if len(ss) == 0 && len(vals) == 0 {
			if a, ok := sv.Value.(*hujson.Array); ok && len(a.Elements) == 0 {
				ps.errorf(sv.StartOffset, "list at least one source", "src is empty")
			}
		}
		for j, s := range ss {
			if sel, ok := ps.selector(s, vals[j], 0, roleSrc); ok {
				for _, x := range ps.ipsetSelectors(sel, vals[j]) {
					r.src = append(r.src, x)
					srcVals = append(srcVals, vals[j])
				}
			}
		}
	}

	if pv, ok := f["proto"]; ok {
		if s, ok := ps.str(pv, "proto"); ok {
			protos, hint, err := parseProto(s)
			if err != nil {
				ps.errorf(pv.StartOffset, hint, "%v", err)
			}
			r.protos = protos
		}
	}

	if dv, ok := f["dst"]; !ok {
		ps.errorf(v.StartOffset, `add "dst": ["host:ports", ...]`, "%s has no dst", what)
	} else {
		ds, vals := ps.strs(dv, "dst")
		if a, ok := dv.Value.(*hujson.Array); ok && len(a.Elements) == 0 {
			ps.errorf(dv.StartOffset, "list at least one destination", "dst is empty")
		}
		for j, s := range ds {
			if d, ok := ps.dstEntry(s, vals[j], roleDst); ok {
				if r.protos != nil && !portsAllowed(r.protos) && !isAllPorts(d.ports) {
					ps.errorf(at(vals[j], strings.LastIndexByte(s, ':')+1), `write the destination as "`+d.sel.text+`:*"`,
						"protocol %s has no ports", f["proto"].Value.(hujson.Literal).String())
				}
				for _, x := range ps.ipsetSelectors(d.sel, vals[j]) {
					d.sel = x
					r.dst = append(r.dst, d)
				}
			}
		}
	}

	ps.checkSelfSources(r, srcVals, true)

	if pv, ok := f["srcPosture"]; ok {
		r.postures = ps.postureList(pv, "srcPosture")
	} else if hasDefault {
		r.postures = defaults
	}

	if wv, ok := f["when"]; ok {
		r.when = ps.window(wv)
	}

	if mv, ok := f["mfa"]; ok {
		if s, ok := ps.str(mv, "mfa"); ok {
			d, err := parseDuration(s)
			if err != nil {
				ps.errorf(mv.StartOffset, `write a duration such as "12h", "30m" or "7d"`, "invalid mfa %q: %v", s, err)
			}
			r.mfa = d
		}
	}

	if len(ps.errs)+ps.dropped > nerr {
		return nil
	}
	r.finish(ps)
	return r
}

// label names r in messages: "acls rule #3" or "grant #3".
func (r *rule) label() string {
	switch r.section {
	case "grants":
		return fmt.Sprintf("grant #%d", r.index+1)
	case "default":
		return "the default rule"
	}
	return fmt.Sprintf("acls rule #%d", r.index+1)
}

// checkSelfSources reports each source of r that autogroup:self cannot go
// with, when some destination of r is autogroup:self. autogroup:self is
// "the source user's own devices", so, as in Tailscale, every source must
// be a user, a group or autogroup:member: not tags, autogroup:tagged,
// autogroup:admin, hosts or addresses, nor "*" unless starOK (Tailscale
// takes "*" there in acls, meaning the owner's own devices, but not in
// grants). (Warren would match nothing for them, but a rule that silently
// means less than it says hides mistakes; Tailscale rejects it too.)
func (ps *parser) checkSelfSources(r *rule, where []hujson.Value, starOK bool) {
	self := false
	for _, d := range r.dst {
		self = self || d.sel.kind == selSelf
	}
	if !self {
		return
	}
	for i, s := range r.src {
		var hint string
		switch s.kind {
		case selUser, selUserDomain, selGroup, selMember:
			continue
		case selNone:
			hint = s.text + " selects nothing in Warren; give it a rule of its own"
		case selAll, selDangerAll:
			if s.kind == selAll && starOK {
				// Tailscale accepts "*" here in acls (not in grants):
				// toward autogroup:self it can only mean the owner's own
				// devices, as autogroup:member does (its recorded compiled
				// filters: conformance case acl-a04 and others).
				continue
			}
			hint = `"*" also stands for tagged devices and addresses, which own no devices; autogroup:member is every user, and other destinations can go in a rule of their own`
		case selAdmin:
			hint = "list the admins in a group and make that group the source"
		case selTag, selTagged:
			hint = fmt.Sprintf("tagged devices belong to no user; give %s a rule of its own with the destinations it needs", s.text)
		default:
			hint = fmt.Sprintf("an address belongs to no user; give %s a rule of its own with the destinations it needs", s.text)
		}
		ps.errorf(where[i].StartOffset, hint,
			"autogroup:self as a destination needs sources that are users, groups or autogroup:member, not %q", s.text)
	}
}

// finish computes a rule's derived fields.
func (r *rule) finish(ps *parser) {
	r.ref = ruleRef(r.section, r.index)
	r.conditional = len(r.postures) > 0 || r.mfa > 0
	for _, d := range r.dst {
		if d.sel.kind == selSelf {
			r.hasSelf = true
		}
	}
	var lits []netip.Prefix
	all := starSources
	for _, s := range r.src {
		switch s.kind {
		case selAll:
			r.srcAll = true
		case selDangerAll:
			r.srcAll, all = true, everyAddress
		case selPrefix:
			lits = append(lits, s.prefix)
			r.srcHasPrefix = true
		}
	}
	if r.conditional {
		if len(lits) > 0 {
			ps.warnf(r.off, "only nodes can satisfy srcPosture and mfa; list the nodes' tags or users instead",
				"%s has srcPosture or mfa: its IP, CIDR and host sources select only mesh nodes inside them", r.label())
		}
		r.srcAll = false
		return
	}
	if r.srcAll {
		for _, s := range r.src {
			r.srcStar = r.srcStar || s.kind == selAll
		}
		// "*" is the mesh's ranges, plus any IP or CIDR sources outside
		// them; autogroup:danger-all is every address.
		lits = append(lits, all...)
		if len(lits) > len(all) {
			lits = dropCovered(lits)
		}
	}
	r.srcLiterals = dedupPrefixes(lits)
}

// dropCovered sorts ps and removes every prefix inside another.
func dropCovered(ps []netip.Prefix) []netip.Prefix {
	ps = dedupPrefixes(ps)
	out := ps[:0]
	for _, p := range ps {
		if n := len(out); n > 0 && out[n-1].Bits() <= p.Bits() && out[n-1].Contains(p.Addr()) {
			continue
		}
		out = append(out, p)
	}
	return out
}

func dedupPrefixes(ps []netip.Prefix) []netip.Prefix {
	if len(ps) == 0 {
		return nil
	}
	slices.SortFunc(ps, wire.ComparePrefix)
	return slices.Compact(ps)
}

// dstEntry parses "selector:ports".
func (ps *parser) dstEntry(s string, v hujson.Value, r role) (dstEntry, bool) {
	host, ports, portOff, ok := splitHostPorts(s)
	if !ok {
		ps.errorf(at(v, 0), fmt.Sprintf("add the ports, e.g. %q or %q", s+":*", s+":22"), "destination %q has no ports", s)
		return dstEntry{}, false
	}
	hostOff := 0
	if strings.HasPrefix(s, "[") {
		hostOff = 1
	}
	if _, _, err := parsePrefix(host); err != nil && looksLikeAddress(host) {
		if _, _, err := parsePrefix(s); err == nil {
			ps.errorf(at(v, 0), fmt.Sprintf("write %q, or %q for all ports", "["+s+"]:22", "["+s+"]:*"), "destination %q has no ports", s)
			return dstEntry{}, false
		}
	}
	sel, ok := ps.selector(host, v, hostOff, r)
	if !ok {
		return dstEntry{}, false
	}
	if r == roleTestDst {
		port, err := strconv.ParseUint(ports, 10, 16)
		if err != nil {
			ps.errorf(at(v, portOff), "tests check one port, e.g. tag:db:5432", "invalid test port %q", ports)
			return dstEntry{}, false
		}
		return dstEntry{sel: sel, ports: []portRange{{uint16(port), uint16(port)}}, off: v.StartOffset, text: s}, true
	}
	pr, errOff, hint, err := parsePorts(ports)
	if err != nil {
		ps.errorf(at(v, portOff+errOff), hint, "%v", err)
		return dstEntry{}, false
	}
	return dstEntry{sel: sel, ports: pr, off: v.StartOffset, text: s}, true
}

// splitHostPorts splits "host:ports" at the last colon; "[v6]:ports" uses
// the bracket. It returns the byte offset of ports in s.
func splitHostPorts(s string) (host, ports string, portOff int, ok bool) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 || end+1 >= len(s) || s[end+1] != ':' {
			return "", "", 0, false
		}
		return s[1:end], s[end+2:], end + 2, true
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", "", 0, false
	}
	host, ports = s[:i], s[i+1:]
	// "tag:db" alone: the colon belongs to the selector.
	if ports == "" || !strings.ContainsAny(ports[:1], "0123456789*") || strings.HasPrefix(ports, "*@") {
		// "*@example.com" is the rest of user:*@example.com.
		return "", "", 0, false
	}
	return host, ports, i + 1, true
}

// parsePorts parses "*", "22", "80,443", "8000-8999" and mixtures, merging
// the ranges. On error it returns the offset of the bad item.
func parsePorts(s string) ([]portRange, int, string, error) {
	const hint = `ports are "*", a number, a range "8000-8999" or a list "22,80-90"`
	if s == "*" {
		return allPorts, 0, "", nil
	}
	if strings.Count(s, ",") >= 65536 {
		return nil, 0, "use ranges such as 8000-8999", fmt.Errorf("too many ports")
	}
	var out []portRange
	off := 0
	for _, item := range strings.Split(s, ",") {
		itemOff := off
		off += len(item) + 1
		if item == "*" {
			out = append(out, allPorts[0])
			continue
		}
		lo, hi, isRange := strings.Cut(item, "-")
		first, err1 := parsePort(lo)
		last := first
		var err2 error
		if isRange {
			last, err2 = parsePort(hi)
		}
		switch {
		case item == "":
			return nil, itemOff, hint, fmt.Errorf("empty port in %q", s)
		case err1 != nil:
			return nil, itemOff, hint, fmt.Errorf("invalid port %q: %v", item, err1)
		case err2 != nil:
			return nil, itemOff + len(lo) + 1, hint, fmt.Errorf("invalid port %q: %v", item, err2)
		case first > last:
			return nil, itemOff, fmt.Sprintf("did you mean %d-%d?", last, first), fmt.Errorf("port range %q ends before it starts", item)
		}
		out = append(out, portRange{first, last})
	}
	out = mergeRanges(out)
	if len(out) > maxPortRanges {
		return nil, 0, "use fewer, wider ranges", fmt.Errorf("%d separate port ranges; the limit is %d", len(out), maxPortRanges)
	}
	return out, 0, "", nil
}

func parsePort(s string) (uint16, error) {
	if s == "" {
		return 0, fmt.Errorf("empty")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("not a number")
		}
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("out of range 0-65535")
	}
	return uint16(n), nil
}

func mergeRanges(rs []portRange) []portRange {
	sort.Slice(rs, func(i, j int) bool { return rs[i].first < rs[j].first })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && uint32(r.first) <= uint32(out[n-1].last)+1 {
			out[n-1].last = max(out[n-1].last, r.last)
			continue
		}
		out = append(out, r)
	}
	return out
}

func isAllPorts(rs []portRange) bool { return len(rs) == 1 && rs[0] == allPorts[0] }

// Protocol numbers by name (IANA), the names Tailscale accepts.
var protoNames = map[string]int{
	"icmp": 1, "icmpv4": 1, "igmp": 2, "dccp": 33, "ipv4": 4, "ip-in-ip": 4, "tcp": 6, "egp": 8, "igp": 9,
	"udp": 17, "gre": 47, "esp": 50, "ah": 51, "ipv6-icmp": 58, "icmpv6": 58, "sctp": 132,
}

const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
	protoSCTP   = 132
)

// parseProto parses a protocol name or number.
func parseProto(s string) ([]int, string, error) {
	if n, ok := protoNames[strings.ToLower(s)]; ok {
		return []int{n}, "", nil
	}
	if s != "" && len(s) <= 3 && strings.Trim(s, "0123456789") == "" {
		n, _ := strconv.Atoi(s)
		if n <= 255 {
			return []int{n}, "", nil
		}
	}
	names := sortedKeys(protoNames)
	return nil, suggest(strings.ToLower(s), names, "use a name ("+strings.Join(names, ", ")+") or a number 0-255"),
		fmt.Errorf("unknown protocol %q", s)
}

// portsAllowed reports whether every protocol has ports.
func portsAllowed(protos []int) bool {
	for _, p := range protos {
		if p != protoTCP && p != protoUDP && p != protoSCTP {
			return false
		}
	}
	return true
}

// parseDuration accepts Go durations ("12h", "90m") and whole days ("7d").
func parseDuration(s string) (time.Duration, error) {
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok && n != "" && strings.Trim(n, "0123456789") == "" {
		days, err := strconv.Atoi(n)
		if err != nil || days > 3660 {
			return 0, fmt.Errorf("too long")
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("not a duration")
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("must be positive")
	}
	if d > 3660*24*time.Hour {
		return 0, fmt.Errorf("too long")
	}
	return d, nil
}

// ruleRef names a rule by its place in the file: "acls[3]", "grants[0]",
// or "default" for the default rule of a policy with neither section. The
// name is what wire.FilterRule.Rule and flow records carry.
func ruleRef(section string, index int) string {
	switch section {
	case "":
		return "acls[" + strconv.Itoa(index) + "]"
	case "default":
		return "default"
	}
	return section + "[" + strconv.Itoa(index) + "]"
}
