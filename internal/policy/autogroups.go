package policy

import "net/netip"

// Tailscale's autogroups beyond the four Warren implements
// (autogroup:member, :tagged, :admin and :self), and what each means
// here. Tailscale's meanings, from its documentation of autogroups
// (tailscale.com/kb/1337/policy-syntax#autogroups) and of IP sets:
//
//   - autogroup:danger-all: every address, in the mesh or not; only as a
//     source. Warren gives it exactly that meaning (0.0.0.0/0 and ::/0).
//   - autogroup:internet: as a destination, the traffic users send
//     through an exit node to the internet: the approved exit nodes, which
//     allow the public internet (routes.go).
//   - autogroup:shared: devices shared into the tailnet by other
//     tailnets. Warren has no device sharing: accepted with a warning, it
//     selects nothing.
//   - autogroup:owner, :it-admin, :network-admin, :billing-admin,
//     :auditor: the users with that Tailscale role. Warren's roles are
//     admin and member, and none of these is granted to anyone: accepted
//     with a warning, each selects nothing (never the admins, which could
//     be more users than meant).
//   - autogroup:nonroot: the Unix users other than root, only in the
//     "users" of an ssh rule; in acls and grants it is an error, as in
//     Tailscale.
//
// Selecting nothing can only grant less than Tailscale would, never more.

// meshRanges are the address ranges of the mesh, from which the
// coordinator allocates every node's addresses. Tailscale compiles "*"
// as a source into its own ranges (100.64.0.0/10 and
// fd7a:115c:a1e0::/48) plus the approved subnet routes, not every
// address; Warren does the same (Graph adds the routes, routes.go).
var meshRanges = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("fd7a:115c:a1e0::/48"),
}

// starSources is what "*" as a source compiles to: the mesh's ranges
// without 100.115.92.0/23, which Tailscale reserves (for ChromeOS's
// virtual machines) and leaves out of "*", as recordings of its compiled
// filters show. These prefixes cover 100.64.0.0/10 but that /23 exactly
// (TestStarSourcesExcludeReserved).
var starSources = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/11"),
	netip.MustParsePrefix("100.96.0.0/12"),
	netip.MustParsePrefix("100.112.0.0/15"),
	netip.MustParsePrefix("100.114.0.0/16"),
	netip.MustParsePrefix("100.115.0.0/18"),
	netip.MustParsePrefix("100.115.64.0/20"),
	netip.MustParsePrefix("100.115.80.0/21"),
	netip.MustParsePrefix("100.115.88.0/22"),
	netip.MustParsePrefix("100.115.94.0/23"),
	netip.MustParsePrefix("100.115.96.0/19"),
	netip.MustParsePrefix("100.115.128.0/17"),
	netip.MustParsePrefix("100.116.0.0/14"),
	netip.MustParsePrefix("100.120.0.0/13"),
	netip.MustParsePrefix("fd7a:115c:a1e0::/48"),
}

// everyAddress is what autogroup:danger-all stands for.
var everyAddress = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/0"),
	netip.MustParsePrefix("::/0"),
}

// inMesh reports whether a is inside the mesh's ranges.
func inMesh(a netip.Prefix) bool { return insideAny(meshRanges, a) }

// inertAutogroups are Tailscale autogroups Warren accepts but that select
// nothing here, with the warning that says why.
var inertAutogroups = map[string]string{
	"autogroup:shared":        "Warren has no device sharing: autogroup:shared selects nothing and grants no access",
	"autogroup:owner":         "Warren has no owner role: autogroup:owner selects nothing and grants no access",
	"autogroup:it-admin":      "Warren has no it-admin role: autogroup:it-admin selects nothing and grants no access",
	"autogroup:network-admin": "Warren has no network-admin role: autogroup:network-admin selects nothing and grants no access",
	"autogroup:billing-admin": "Warren has no billing-admin role: autogroup:billing-admin selects nothing and grants no access",
	"autogroup:auditor":       "Warren has no auditor role: autogroup:auditor selects nothing and grants no access",
}

// extraAutogroup parses the autogroups of the list above in role r. It
// returns ok false with a message and hint when s is not one of them or
// is not allowed in r; known reports whether s is one of them at all.
func (ps *parser) extraAutogroup(s string, pos int, r role) (sel selector, known, ok bool, hint, msg string) {
	switch s {
	case "autogroup:danger-all":
		if r != roleSrc {
			return selector{}, true, false, `autogroup:danger-all is every address and can only be a source; as a destination write "*"`,
				"autogroup:danger-all cannot be a " + r.String()
		}
		return selector{kind: selDangerAll, text: s}, true, true, "", ""
	case "autogroup:internet":
		if r != roleDst {
			return selector{}, true, false, "autogroup:internet is the internet reached through exit nodes and can only be a destination",
				"autogroup:internet cannot be a " + r.String()
		}
		return selector{kind: selInternet, text: s}, true, true, "", ""
	case "autogroup:nonroot":
		return selector{}, true, false, `autogroup:nonroot names the Unix users other than root and belongs in the "users" of an ssh rule`,
			"autogroup:nonroot cannot be a " + r.String()
	}
	w, isInert := inertAutogroups[s]
	if !isInert {
		return selector{}, false, false, "", ""
	}
	ps.warnf(pos, "remove it, or name the users, tags or addresses you mean", "%s", w)
	return selector{kind: selNone, text: s}, true, true, "", ""
}
