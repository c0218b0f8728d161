package policy

import (
	"fmt"
	"strings"
)

// Hints that name another selector ("did you mean ...?") are only ever
// for a name of the same kind as the one written — a group for a group,
// a tag for a tag, a host alias for a bare name — and an autogroup is
// suggested only for a near spelling of that very autogroup. An admin who
// accepts a suggestion must never grant more than they meant: the closest
// name by spelling can select far more devices (autogroup:internet is
// two letters from nothing Warren has, and four from autogroup:member).
// When in doubt, the hint explains instead of suggesting.

// foreignAutogroups are Tailscale autogroups Warren does not implement,
// with what to write instead. None of them is answered with a Warren
// autogroup: each means something else.
var foreignAutogroups = map[string]string{
	"autogroup:internet":      "Warren has no exit nodes; allow the addresses you mean as CIDRs",
	"autogroup:danger-all":    `Warren does not have it; "*" as a source is every address`,
	"autogroup:shared":        "Warren has no device sharing; name the users",
	"autogroup:owner":         "Warren's roles are admin and member; name the owner's login",
	"autogroup:it-admin":      "Warren's roles are admin and member; list these users in a group",
	"autogroup:network-admin": "Warren's roles are admin and member; list these users in a group",
	"autogroup:billing-admin": "Warren's roles are admin and member; list these users in a group",
	"autogroup:auditor":       "Warren's roles are admin and member; list these users in a group",
	"autogroup:nonroot":       `autogroup:nonroot is a local user in an ssh rule's "users", not a device selector`,
}

// autogroupHint is the hint for an unknown autogroup s written in role r.
func autogroupHint(s string, r role) string {
	supported := "Warren supports " + strings.Join(autogroupsFor(r), ", ")
	if h, ok := foreignAutogroups[strings.ToLower(s)]; ok {
		return h + " (" + supported + ")"
	}
	if a := nearAutogroup(s, r); a != "" {
		return fmt.Sprintf("did you mean %q?", a)
	}
	return supported
}

// autogroupsFor lists the autogroups allowed in role r.
func autogroupsFor(r role) []string {
	if r == roleDst {
		return autogroups
	}
	return autogroups[:len(autogroups)-1] // all but autogroup:self
}

// nearAutogroup returns the Warren autogroup s nearly spells (other case,
// a plural s, or one edit away), or "".
func nearAutogroup(s string, r role) string {
	rest, ok := strings.CutPrefix(strings.ToLower(s), "autogroup:")
	if !ok || len(rest) < 3 {
		return ""
	}
	for _, a := range autogroupsFor(r) {
		name := strings.TrimPrefix(a, "autogroup:")
		if rest == name || rest == name+"s" || editDistance(rest, name, 1) <= 1 {
			return a
		}
	}
	return ""
}

// selectorPrefixes are the prefixes of selector kinds whose names a
// mistyped prefix may be corrected to.
var selectorPrefixes = []string{"group", "tag", "autogroup"}

// prefixTypoHint handles a name like "gruop:eng" or "Tag:web": when its
// prefix is a near spelling of a selector kind's and that kind has exactly
// the name after it, the hint names it; otherwise "".
func (ps *parser) prefixTypoHint(s string, r role) string {
	p, rest, ok := strings.Cut(s, ":")
	if !ok || p == "" || rest == "" {
		return ""
	}
	for _, k := range selectorPrefixes {
		lp := strings.ToLower(p)
		if lp == k || (len(p) >= 3 && editDistance(lp, k, 2) <= 2) {
			name := k + ":" + rest
			var defined bool
			switch k {
			case "group":
				_, defined = ps.p.groups[name]
				defined = defined && r != roleTestDst
			case "tag":
				_, defined = ps.p.tags[name]
			case "autogroup":
				defined = contains(autogroupsFor(r), name) && r != roleTestSrc && r != roleTestDst
			}
			if defined {
				return fmt.Sprintf("did you mean %q?", name)
			}
			return ""
		}
	}
	return ""
}

// groupHint is the hint for an unknown group s. Groups the identity
// provider fills must be declared too (as []), which is the usual cause,
// so the hint says how; a near spelling of a declared group is offered
// first, since a typo is the other cause.
func (ps *parser) groupHint(s string) string {
	declare := fmt.Sprintf("%q: []", s)
	if best := ps.suggest(s, "groups", ""); best != "" {
		return best + ` If it is a group of the identity provider, declare it in "groups": ` + declare
	}
	return `declare every group a rule uses in "groups", also one the identity provider fills: ` + declare
}
