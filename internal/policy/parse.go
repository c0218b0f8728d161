package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/tailscale/hujson"
)

// Limits on hostile or accidental input. A real policy is far below all of
// them.
const (
	// MaxSize is the largest policy file Parse accepts.
	MaxSize = 4 << 20
	// maxDepth caps nesting of arrays and objects; hujson's parser recurses
	// once per level, and a policy needs about six.
	maxDepth = 64
	// maxRules caps the acls section.
	maxRules = 20000
	// maxPortRanges caps the (merged) port ranges of one destination.
	maxPortRanges = 1024
	// maxTestChecks caps rule evaluations spent running the tests section.
	maxTestChecks = 20_000_000
)

// Policy is a parsed, validated and tested policy file. It is immutable
// and safe for concurrent use.
type Policy struct {
	src       []byte
	hash      string
	d         *diag
	groups    map[string]*group   // "group:eng" -> definition
	userGrp   map[string][]string // login -> groups that list it
	hosts     map[string]netip.Prefix
	ipsets    map[string]*ipsetDef
	tags      map[string]*tagDef // "tag:db" -> owners
	postures  []*posture
	posIdx    map[string]int // "posture:x" -> index into postures
	rules     []*rule        // acls, then grants
	appGrants []AppGrant
	tests     []*policyTest
	access    []*accessRule // the access section (access.go)
	warnings  []*Error
	ext       extSections // autoApprovers, nodeAttrs, ssh, sshTests, options

	// Indexes for Graph: rules naming a user, group or tag ("u:", "g:",
	// "t:" + name), rules every node must be checked against, rules with
	// autogroup:self, rules with a time window.
	idx       map[string][]int32
	generic   []int32
	selfRules []int32
	whenRules []int32
}

type group struct {
	name    string
	members []string // lowercased logins, as listed
	off     int
}

type tagDef struct {
	name   string
	owners []owner
	off    int
}

// Warnings returns what Parse found suspicious but legal, such as rules
// that allow nothing another rule does not already allow.
func (p *Policy) Warnings() []*Error { return append([]*Error(nil), p.warnings...) }

// Hash is the hex SHA-256 of the policy file's bytes.
func (p *Policy) Hash() string { return p.hash }

// Source returns the policy file's bytes.
func (p *Policy) Source() []byte { return bytes.Clone(p.src) }

// parser walks the hujson syntax tree and fills a Policy.
type parser struct {
	*diag
	p        *Policy
	lim      limits
	names    map[string][]string // sorted defined names by kind, for suggestions
	expanded int                 // address selectors IP set references expanded to
}

// limits are the caps on the work of the two analyses that are quadratic
// in the policy's size. Parse uses maxShadowWork and maxTestChecks; tests
// lower them to check, at small sizes, that work past a cap stops growing.
type limits struct {
	shadowWork int // selector comparisons for shadowed rules
	testChecks int // rule evaluations for the tests section
}

// suggest is the package's suggest over the defined names of one kind
// ("groups", "tags", "hosts" or "postures"), computed once. Only names of
// that kind are candidates, and only the part after the kind's prefix is
// compared, so a shared "group:" does not make unrelated names look
// alike. Once the error list is full it returns fallback at once.
func (ps *parser) suggest(name, kind, fallback string) string {
	if len(ps.errs) >= maxErrors {
		return fallback
	}
	if ps.names == nil {
		ps.names = map[string][]string{}
	}
	list, ok := ps.names[kind]
	if !ok {
		switch kind {
		case "groups":
			list = sortedKeys(ps.p.groups)
		case "tags":
			list = sortedKeys(ps.p.tags)
		case "hosts":
			list = sortedKeys(ps.p.hosts)
		case "postures":
			list = sortedKeys(ps.p.posIdx)
		case "ipsets":
			list = sortedKeys(ps.p.ipsets)
		}
		ps.names[kind] = list
	}
	prefix := kindPrefix[kind]
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return fallback
	}
	rests := make([]string, len(list))
	for i, c := range list {
		rests[i] = strings.TrimPrefix(c, prefix)
	}
	if best := closest(rest, rests); best != "" {
		return fmt.Sprintf("did you mean %q?", prefix+best)
	}
	return fallback
}

// kindPrefix is the prefix every name of a kind starts with.
var kindPrefix = map[string]string{"groups": "group:", "tags": "tag:", "postures": "posture:", "hosts": "", "ipsets": "ipset:"}

// Parse parses and validates a policy file and runs its tests. It returns
// an Errors value listing every problem found, or the policy. It never
// panics and its work is bounded for any input.
func Parse(src []byte) (*Policy, error) {
	return parse(src, limits{shadowWork: maxShadowWork, testChecks: maxTestChecks})
}

func parse(src []byte, lim limits) (*Policy, error) {
	src = bytes.Clone(src)
	sum := sha256.Sum256(src)
	p := &Policy{
		src:     src,
		hash:    hex.EncodeToString(sum[:]),
		d:       newDiag(src),
		groups:  map[string]*group{},
		userGrp: map[string][]string{},
		hosts:   map[string]netip.Prefix{},
		ipsets:  map[string]*ipsetDef{},
		tags:    map[string]*tagDef{},
		posIdx:  map[string]int{},
		idx:     map[string][]int32{},
	}
	ps := &parser{diag: p.d, p: p, lim: lim}
	if len(src) > MaxSize {
		ps.errorf(0, "split the policy or remove unused entries",
			"policy file is %d bytes; the limit is %d", len(src), MaxSize)
		return nil, ps.err()
	}
	if off, ok := checkDepth(src); !ok {
		ps.errorf(off, "policies need only a few levels of nesting",
			"nesting deeper than %d levels", maxDepth)
		return nil, ps.err()
	}
	root, err := hujson.Parse(src)
	if err != nil {
		ps.syntaxError(err)
		return nil, ps.err()
	}
	ps.top(root)
	if e := ps.err(); e != nil {
		return nil, e
	}
	p.buildIndex()
	p.findShadowed(lim.shadowWork)
	ps.runTests()
	ps.runSSHTests()
	if e := ps.err(); e != nil {
		return nil, e
	}
	p.warnings = ps.warns
	return p, nil
}

// checkDepth scans for nesting deeper than maxDepth outside strings and
// comments, returning the offset of the first bracket too deep.
func checkDepth(b []byte) (int, bool) {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case '/':
			if i+1 < len(b) && b[i+1] == '/' {
				for i < len(b) && b[i] != '\n' {
					i++
				}
			} else if i+1 < len(b) && b[i+1] == '*' {
				end := bytes.Index(b[i+2:], []byte("*/"))
				if end < 0 {
					return 0, true // the parser reports the open comment
				}
				i += 2 + end + 1
			}
		case '[', '{':
			if depth++; depth > maxDepth {
				return i, false
			}
		case ']', '}':
			depth--
		}
	}
	return 0, true
}

// syntaxError turns a hujson error ("hujson: line L, column C: msg") into
// an *Error at the same place.
func (ps *parser) syntaxError(err error) {
	msg := err.Error()
	var line, col int
	rest := msg
	if _, e := fmt.Sscanf(msg, "hujson: line %d, column %d:", &line, &col); e == nil {
		if i := strings.Index(msg, ": "); i >= 0 {
			if j := strings.Index(msg[i+2:], ": "); j >= 0 {
				rest = msg[i+2+j+2:]
			}
		}
	} else {
		line, col = 1, 1
	}
	ps.errorf(ps.offsetOf(line, col), "check for a missing comma, quote or bracket just before this point",
		"syntax error: %s", rest)
}

// top walks the top-level object. Definitions are read before the rules
// and tests that refer to them, wherever they appear in the file.
func (ps *parser) top(root hujson.Value) {
	obj, ok := ps.object(root, "the policy")
	if !ok {
		return
	}
	fields := ps.fields(obj, "the policy", topFields, topFieldHints)
	if v, ok := fields["groups"]; ok {
		ps.groups(v)
	}
	if v, ok := fields["hosts"]; ok {
		ps.hosts(v)
	}
	if v, ok := fields["ipsets"]; ok {
		ps.ipsets(v)
	}
	if v, ok := fields["tagOwners"]; ok {
		ps.tagOwners(v)
	}
	if v, ok := fields["postures"]; ok {
		ps.postures(v)
	}
	var defaults []int
	hasDefault := false
	if v, ok := fields["defaultSrcPosture"]; ok {
		defaults, hasDefault = ps.postureList(v, "defaultSrcPosture"), true
	}
	if v, ok := fields["acls"]; ok {
		ps.acls(v, defaults, hasDefault)
	}
	if v, ok := fields["grants"]; ok {
		ps.grants(v, defaults, hasDefault)
	}
	_, hasACLs := fields["acls"]
	if _, hasGrants := fields["grants"]; !hasACLs && !hasGrants {
		ps.defaultAllow(root)
	}
	if v, ok := fields["access"]; ok {
		ps.accessSection(v)
	}
	if v, ok := fields["tests"]; ok {
		ps.testsSection(v)
	}
	ps.extSections(fields)
}

var topFields = append([]string{"groups", "hosts", "tagOwners", "postures", "defaultSrcPosture", "acls", "grants", "ipsets", "tests", "access"}, extFields...)

// topFieldHints explains Tailscale sections Warren does not implement
// (none left: every section Tailscale documents is read).
var topFieldHints = map[string]string{}

// fields reads an object's members, reporting unknown and duplicate
// names, and returns the known ones by name.
func (ps *parser) fields(obj *hujson.Object, what string, known []string, hints map[string]string) map[string]hujson.Value {
	out := make(map[string]hujson.Value, len(obj.Members))
	for _, m := range obj.Members {
		name := m.Name.Value.(hujson.Literal).String()
		if _, dup := out[name]; dup {
			ps.errorf(m.Name.StartOffset, "merge the two into one", "duplicate field %q in %s", name, what)
			continue
		}
		if !contains(known, name) {
			hint := hints[name]
			if hint == "" {
				hint = "known fields: " + strings.Join(known, ", ")
				if best := closest(name, append(sortedKeys(hints), known...)); best != "" {
					hint = fmt.Sprintf("did you mean %q?", best)
					if h, ok := hints[best]; ok {
						hint += " " + h
					}
				}
			}
			ps.errorf(m.Name.StartOffset, hint, "unknown field %q in %s", name, what)
			continue
		}
		out[name] = m.Value
	}
	return out
}

// entries returns an object's members, reporting duplicate names.
func (ps *parser) entries(v hujson.Value, what string) []hujson.ObjectMember {
	obj, ok := ps.object(v, what)
	if !ok {
		return nil
	}
	seen := make(map[string]bool, len(obj.Members))
	out := obj.Members[:0:0]
	for _, m := range obj.Members {
		name := m.Name.Value.(hujson.Literal).String()
		if seen[name] {
			ps.errorf(m.Name.StartOffset, "merge the two entries", "duplicate entry %q in %s", name, what)
			continue
		}
		seen[name] = true
		out = append(out, m)
	}
	return out
}

func kindName(v hujson.Value) string {
	switch v.Value.Kind() {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a value"
}

func (ps *parser) object(v hujson.Value, what string) (*hujson.Object, bool) {
	o, ok := v.Value.(*hujson.Object)
	if !ok {
		ps.errorf(v.StartOffset, "write it as {...}", "%s must be an object, not %s", what, kindName(v))
	}
	return o, ok
}

func (ps *parser) array(v hujson.Value, what string) (*hujson.Array, bool) {
	a, ok := v.Value.(*hujson.Array)
	if !ok {
		ps.errorf(v.StartOffset, "write it as [...]", "%s must be an array, not %s", what, kindName(v))
	}
	return a, ok
}

func (ps *parser) str(v hujson.Value, what string) (string, bool) {
	l, ok := v.Value.(hujson.Literal)
	if !ok || l.Kind() != '"' {
		ps.errorf(v.StartOffset, "put it in double quotes", "%s must be a string, not %s", what, kindName(v))
		return "", false
	}
	return l.String(), true
}

// strings reads an array of strings, returning each with its value.
func (ps *parser) strs(v hujson.Value, what string) ([]string, []hujson.Value) {
	a, ok := ps.array(v, what)
	if !ok {
		return nil, nil
	}
	ss := make([]string, 0, len(a.Elements))
	vs := make([]hujson.Value, 0, len(a.Elements))
	for _, e := range a.Elements {
		if s, ok := ps.str(e, "each entry of "+what); ok {
			ss = append(ss, s)
			vs = append(vs, e)
		}
	}
	return ss, vs
}

// at returns the byte offset of the i-th byte of the unquoted string in v,
// or the string's start when escapes make the mapping unclear.
func at(v hujson.Value, i int) int {
	l, ok := v.Value.(hujson.Literal)
	if !ok || l.Kind() != '"' || bytes.IndexByte(l, '\\') >= 0 {
		return v.StartOffset
	}
	if i < 0 || i > len(l)-2 {
		return v.StartOffset
	}
	return v.StartOffset + 1 + i
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// validName reports whether s is a valid name after a "group:", "tag:" or
// "posture:" prefix, or a host alias: a letter or digit, then letters,
// digits, '-', '_' or '.'.
func validName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '-' || c == '_' || c == '.'):
		default:
			return false
		}
	}
	return true
}

const nameRules = "names start with a letter or digit and use only letters, digits, '-', '_' and '.'"

// validLogin reports whether s looks like a user login (an email address
// or "name@provider").
func validLogin(s string) bool {
	if len(s) > 254 || strings.Count(s, "@") < 1 || strings.HasPrefix(s, "@") {
		return false
	}
	for _, c := range s {
		if c <= ' ' || c == 0x7f || c == ':' || c == ',' || c == '"' || c == '\'' || c == '[' || c == ']' {
			return false
		}
	}
	return true
}

// buildIndex fills the rule indexes Graph uses to find the rules that may
// concern a node.
func (p *Policy) buildIndex() {
	for i, r := range p.rules {
		ri := int32(i)
		generic := false
		keys := map[string]bool{}
		add := func(s selector) {
			switch s.kind {
			case selUser:
				keys["u:"+s.name] = true
			case selGroup:
				keys["g:"+s.name] = true
			case selTag:
				keys["t:"+s.name] = true
			default:
				generic = true
			}
		}
		for _, s := range r.src {
			add(s)
		}
		for _, d := range r.dst {
			add(d.sel)
		}
		if generic {
			p.generic = append(p.generic, ri)
		} else {
			ks := sortedKeys(keys)
			for _, k := range ks {
				p.idx[k] = append(p.idx[k], ri)
			}
		}
		if r.hasSelf {
			p.selfRules = append(p.selfRules, ri)
		}
		if r.when != nil {
			p.whenRules = append(p.whenRules, ri)
		}
	}
	for _, list := range p.idx {
		sort.Slice(list, func(i, j int) bool { return list[i] < list[j] })
	}
}

// prefixHint suggests name with the right prefix: "grop:eng" -> "group:eng".
func prefixHint(prefix, name string) string {
	if _, rest, ok := strings.Cut(name, ":"); ok {
		name = rest
	}
	return fmt.Sprintf("did you mean %q?", prefix+name)
}
