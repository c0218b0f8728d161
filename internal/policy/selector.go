package policy

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/tailscale/hujson"
)

type selKind uint8

const (
	selAll        selKind = iota // "*"
	selUser                      // ann@example.com
	selGroup                     // group:eng
	selTag                       // tag:db
	selPrefix                    // IP, CIDR or host alias
	selMember                    // autogroup:member
	selTagged                    // autogroup:tagged
	selAdmin                     // autogroup:admin
	selSelf                      // autogroup:self (destinations only)
	selDangerAll                 // autogroup:danger-all: every address (sources only)
	selNone                      // an autogroup Warren has nothing for: selects nothing
	selIPSet                     // ipset:NAME, expanded into selPrefix ones by Policy.ipsetSelectors
	selUserDomain                // user:*@example.com: every user of that login domain
	selInternet                  // autogroup:internet: the internet through exit nodes (destinations only)
)

// selector is one parsed source or destination.
type selector struct {
	kind   selKind
	name   string       // login (lowercased), "group:x", "tag:x", host alias, or a user domain (lowercased)
	prefix netip.Prefix // selPrefix
	text   string       // as written
}

// role says where a selector appears, which decides the kinds allowed.
type role uint8

const (
	roleSrc role = iota
	roleDst
	roleTestSrc
	roleTestDst
)

func (r role) String() string {
	switch r {
	case roleSrc:
		return "src"
	case roleDst:
		return "dst"
	case roleTestSrc:
		return "test src"
	}
	return "test destination"
}

var autogroups = []string{"autogroup:member", "autogroup:tagged", "autogroup:admin", "autogroup:self"}

// selector parses s, found at byte off of the string in v.
func (ps *parser) selector(s string, v hujson.Value, off int, r role) (selector, bool) {
	pos := at(v, off)
	if l, ok := v.Value.(hujson.Literal); ok && off == 0 && l.String() == s {
		pos = v.StartOffset // the whole string: point at its opening quote
	}
	test := r == roleTestSrc || r == roleTestDst
	fail := func(hint, format string, args ...any) (selector, bool) {
		ps.errorf(pos, hint, format, args...)
		return selector{}, false
	}
	testHint := "tests take a user login, tag:..., a host alias or an IP address"
	if r == roleTestSrc {
		testHint = "test sources are a user login, group:..., tag:..., a host alias or an IP address"
	}
	switch {
	case s == "":
		return fail("write a user, group:..., tag:..., host alias, IP, CIDR, autogroup:... or *", "empty %s", r)
	case s == "*":
		if test {
			return fail(testHint, "%s cannot be *", r)
		}
		return selector{kind: selAll, text: s}, true
	case strings.HasPrefix(s, "autogroup:"):
		if test {
			return fail(testHint, "%s cannot be %s", r, s)
		}
		switch s {
		case "autogroup:member":
			return selector{kind: selMember, text: s}, true
		case "autogroup:tagged":
			return selector{kind: selTagged, text: s}, true
		case "autogroup:admin":
			return selector{kind: selAdmin, text: s}, true
		case "autogroup:self":
			if r != roleDst {
				return fail("autogroup:self is a destination meaning the source's own devices; use autogroup:member as a source",
					"autogroup:self cannot be a source")
			}
			return selector{kind: selSelf, text: s}, true
		}
		if sel, known, ok, hint, msg := ps.extraAutogroup(s, pos, r); known {
			if !ok {
				return fail(hint, "%s", msg)
			}
			return sel, true
		}
		return fail(autogroupHint(s, r), "unknown autogroup %q", s)
	case strings.HasPrefix(s, "group:"):
		if r == roleTestDst {
			return fail(testHint, "a test destination cannot be a group")
		}
		if _, ok := ps.p.groups[s]; !ok {
			return fail(ps.groupHint(s), "unknown group %q", s)
		}
		return selector{kind: selGroup, name: s, text: s}, true
	case strings.HasPrefix(s, "tag:"):
		if _, ok := ps.p.tags[s]; !ok {
			return fail(ps.suggest(s, "tags", fmt.Sprintf(`add "%s": [owners] to "tagOwners"`, s)), "tag %q has no tagOwners entry", s)
		}
		return selector{kind: selTag, name: s, text: s}, true
	case strings.HasPrefix(s, "ipset:"):
		sel, hint, err := ps.ipsetSelector(s, r)
		if err != nil {
			return fail(hint, "%v", err)
		}
		return sel, true
	case strings.HasPrefix(s, "host:"):
		// Tailscale's explicit spelling of a host alias.
		name := strings.TrimPrefix(s, "host:")
		if _, ok := ps.p.hosts[name]; ok {
			return ps.selector(name, v, off+len("host:"), r)
		}
		return fail(ps.suggest(name, "hosts", `define it in "hosts"`), "unknown host %q", s)
	case strings.HasPrefix(s, "user:*@"):
		// Tailscale's every-user-of-a-domain selector. Tailscale also
		// refuses a domain that is not one of the tailnet's own; Warren
		// keeps no such list, so it accepts any (it selects only users
		// whose login has exactly that domain).
		if test {
			return fail(testHint, "%s cannot be %s", r, s)
		}
		dom := strings.ToLower(strings.TrimPrefix(s, "user:*@"))
		if dom == "" || strings.ContainsAny(dom, "@*/: \t") || !validLogin("x@"+dom) {
			return fail("write a login domain, e.g. user:*@example.com", "invalid domain in %q", s)
		}
		return selector{kind: selUserDomain, name: dom, text: s}, true
	case strings.HasPrefix(s, "posture:"):
		return fail(`postures go in the rule's "srcPosture" field`, "%s is a posture, not a %s", s, r)
	case strings.Contains(s, "@"):
		if !validLogin(s) {
			return fail("user logins look like ann@example.com", "invalid user login %q", s)
		}
		return selector{kind: selUser, name: strings.ToLower(s), text: s}, true
	}
	if pfx, ok := ps.p.hosts[s]; ok {
		if test && !pfx.IsSingleIP() && r == roleTestDst {
			return fail("name a host alias that is a single address, or an IP", "test destination %s is a CIDR (%s)", s, pfx)
		}
		return selector{kind: selPrefix, name: s, prefix: pfx, text: s}, true
	}
	if looksLikeAddress(s) {
		pfx, hint, err := parsePrefix(s)
		if err != nil {
			return fail(hint, "%v", err)
		}
		if test && !pfx.IsSingleIP() && r == roleTestDst {
			return fail("name one address", "test destination %s is a CIDR", s)
		}
		return selector{kind: selPrefix, prefix: pfx, text: s}, true
	}
	hint := ps.prefixTypoHint(s, r)
	if hint == "" {
		hint = ps.suggest(s, "hosts", `define it in "hosts", or write a user login, group:..., tag:..., IP, CIDR, autogroup:... or *`)
	}
	return fail(hint, "unknown %s %q", r, s)
}

// looksLikeAddress reports whether s is made of the characters of IP
// addresses and CIDRs and so was meant as one.
func looksLikeAddress(s string) bool {
	digits := false
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits = true
		case c == '.', c == ':', c == '/', c == '%', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
		default:
			return false
		}
	}
	return digits && strings.ContainsAny(s, ".:")
}

// subject is a node, or an address, as rules see it: a graph node, or a
// hypothetical source or destination of a test or Explain query.
type subject struct {
	isNode bool
	tagged bool
	user   string // lowercased login; "" for tagged nodes and addresses
	admin  bool
	groups []string
	tags   []string
	addrs  []netip.Prefix
	routes []netip.Prefix // approved routes (routes.go), normalized
	attrs  map[string]string
	label  string // for messages
}

// matches reports whether s selects x. autogroup:self is decided by the
// caller, who knows the source.
func (s *selector) matches(x *subject) bool {
	switch s.kind {
	case selAll:
		// "*" is every node, and of other addresses those in the mesh's
		// ranges (see meshRanges).
		if x.isNode {
			return true
		}
		for _, a := range x.addrs {
			if !inMesh(a) {
				return false
			}
		}
		return len(x.addrs) > 0
	case selDangerAll:
		return true
	case selUser:
		return x.isNode && !x.tagged && x.user == s.name
	case selUserDomain:
		return x.isNode && !x.tagged && loginDomain(x.user) == s.name
	case selGroup:
		return x.isNode && !x.tagged && contains(x.groups, s.name)
	case selTag:
		return x.isNode && x.tagged && contains(x.tags, s.name)
	case selPrefix:
		for _, a := range x.addrs {
			if s.prefix.Bits() <= a.Bits() && s.prefix.Contains(a.Addr()) {
				return true
			}
		}
		return false
	case selMember:
		return x.isNode && !x.tagged && x.user != ""
	case selTagged:
		return x.isNode && x.tagged
	case selAdmin:
		return x.isNode && !x.tagged && x.user != "" && x.admin
	}
	return false
}

// loginDomain returns the part of a (lowercased) login after its last
// "@", or "" when it has none.
func loginDomain(login string) string {
	i := strings.LastIndexByte(login, '@')
	if i < 0 {
		return ""
	}
	return login[i+1:]
}

// selfUser returns the user whose untagged nodes autogroup:self concerns
// for x, or "" when it concerns none.
func (x *subject) selfUser() string {
	if !x.isNode || x.tagged {
		return ""
	}
	return x.user
}
