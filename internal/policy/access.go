package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tailscale/hujson"
)

// This file is the policy's "access" section (a Warren extension): who may
// request just-in-time access to what, who approves it, for how long at
// most and under which conditions. A request names one destination written
// like an acls destination ("tag:prod-db:5432"); it is allowed by the first
// access rule whose src selects the requesting device and whose dst covers
// the requested destination (same host, group, tag or prefix selector;
// ports within the rule's). The section never grants anything itself: an
// approved request becomes a Grant in the Graph (graph_access.go).

// AccessRule is one entry of the policy's access section, as written.
type AccessRule struct {
	// Ref is its id in audit events, grants and flow logs: "access[0]".
	Ref string
	// Src and Dst are the rule's selectors as written; Approvers lists
	// users and groups ("group:sre", "bob@example.com").
	Src, Dst, Approvers []string
	// SelfApprove lets the requester approve their own request
	// (break-glass); it requires "approvers": [] and always raises an
	// alert.
	SelfApprove bool
	// MaxDuration bounds a grant's duration.
	MaxDuration time.Duration
	// MFA is how fresh the requester's MFA must be when filing (0: not
	// required).
	MFA time.Duration
	// ReasonRequired: "reason": "required".
	ReasonRequired bool
}

// MaxAccessDuration is the longest "maxDuration" an access rule may have.
const MaxAccessDuration = 30 * 24 * time.Hour

// maxAccessRules caps the access section.
const maxAccessRules = 10000

// Errors of the access section's queries.
var (
	// ErrNoAccessRule: no access rule lets this device request that
	// destination.
	ErrNoAccessRule = errors.New("no access rule lets this device request that destination")
	// ErrBadDestination: the destination is not written like an acls
	// destination ("host:ports").
	ErrBadDestination = errors.New("malformed destination")
)

// accessRule is one compiled access rule.
type accessRule struct {
	pub       AccessRule
	off       int
	src       []selector
	dst       []dstEntry
	approvers []string // lowercased logins and "group:x"
}

var accessFields = []string{"src", "dst", "approvers", "selfApprove", "maxDuration", "mfa", "reason"}

var accessFieldHints = map[string]string{
	"action":     "access rules have no action: they say who may request access, not what is allowed",
	"users":      `use "src"`,
	"ports":      `use "dst"`,
	"duration":   `use "maxDuration"`,
	"approver":   `use "approvers", a list`,
	"approval":   `use "approvers", a list`,
	"self":       `use "selfApprove": true`,
	"srcPosture": "access rules take no postures; the rules the grant is used under are checked at request time",
}

func (ps *parser) accessSection(v hujson.Value) {
	a, ok := ps.array(v, "access")
	if !ok {
		return
	}
	if len(a.Elements) > maxAccessRules {
		ps.errorf(v.StartOffset, "merge rules that share sources or destinations", "%d access rules; the limit is %d", len(a.Elements), maxAccessRules)
		return
	}
	for i, e := range a.Elements {
		if r := ps.accessRule(i, e); r != nil {
			ps.p.access = append(ps.p.access, r)
		}
	}
}

func (ps *parser) accessRule(i int, v hujson.Value) *accessRule {
	what := fmt.Sprintf("access rule #%d", i+1)
	obj, ok := ps.object(v, what)
	if !ok {
		return nil
	}
	f := ps.fields(obj, what, accessFields, accessFieldHints)
	nerr := len(ps.errs) + ps.dropped
	r := &accessRule{off: v.StartOffset}
	r.pub.Ref = ruleRef("access", i)

	if sv, ok := f["src"]; !ok {
		ps.errorf(v.StartOffset, `add "src": [...], the devices that may request`, "%s has no src", what)
	} else {
		ss, vals := ps.strs(sv, "src")
		if a, ok := sv.Value.(*hujson.Array); ok && len(a.Elements) == 0 {
			ps.errorf(sv.StartOffset, "list at least one source", "src is empty")
		}
		for j, s := range ss {
			if sel, ok := ps.selector(s, vals[j], 0, roleSrc); ok {
				r.src = append(r.src, ps.ipsetSelectors(sel, vals[j])...)
				r.pub.Src = append(r.pub.Src, s)
			}
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
			d, ok := ps.dstEntry(s, vals[j], roleDst)
			if !ok {
				continue
			}
			if hint := accessDstKindHint(d.sel.kind); hint != "" {
				ps.errorf(vals[j].StartOffset, hint, "%s cannot be an access destination", d.sel.text)
				continue
			}
			for _, x := range ps.ipsetSelectors(d.sel, vals[j]) {
				d.sel = x
				r.dst = append(r.dst, d)
			}
			r.pub.Dst = append(r.pub.Dst, s)
		}
	}

	if av, ok := f["approvers"]; !ok {
		ps.errorf(v.StartOffset, `add "approvers": ["group:..."], or "approvers": [] with "selfApprove": true for break-glass`, "%s has no approvers", what)
	} else {
		r.approvers, r.pub.Approvers = ps.accessApprovers(av)
	}
	if sv, ok := f["selfApprove"]; ok {
		r.pub.SelfApprove, _ = ps.boolean(sv, "selfApprove")
		if r.pub.SelfApprove && len(r.pub.Approvers) > 0 {
			ps.errorf(sv.StartOffset, `a break-glass rule has "approvers": []; remove "selfApprove" to require an approver`,
				"%s has both approvers and selfApprove", what)
		}
	}
	if av, ok := f["approvers"]; ok && !r.pub.SelfApprove {
		if a, ok := av.Value.(*hujson.Array); ok && len(a.Elements) == 0 {
			ps.errorf(av.StartOffset, `list who approves, or add "selfApprove": true for a break-glass rule`,
				"%s has no approvers and no selfApprove", what)
		}
	}

	if mv, ok := f["maxDuration"]; !ok {
		ps.errorf(v.StartOffset, `add "maxDuration": "4h", the longest a grant may last`, "%s has no maxDuration", what)
	} else if s, ok := ps.str(mv, "maxDuration"); ok {
		d, err := parseDuration(s)
		switch {
		case err != nil:
			ps.errorf(mv.StartOffset, `write a duration such as "4h", "30m" or "7d"`, "invalid maxDuration %q: %v", s, err)
		case d > MaxAccessDuration:
			ps.errorf(mv.StartOffset, "standing access belongs in acls; just-in-time grants last at most 30d",
				"maxDuration %q is longer than 30d", s)
		}
		r.pub.MaxDuration = d
	}

	if mv, ok := f["mfa"]; ok {
		if s, ok := ps.str(mv, "mfa"); ok {
			d, err := parseDuration(s)
			if err != nil {
				ps.errorf(mv.StartOffset, `write a duration such as "15m" or "1h"`, "invalid mfa %q: %v", s, err)
			}
			r.pub.MFA = d
		}
	}

	if rv, ok := f["reason"]; ok {
		if s, ok := ps.str(rv, "reason"); ok {
			switch s {
			case "required":
				r.pub.ReasonRequired = true
			case "optional":
			default:
				ps.errorf(rv.StartOffset, `write "required" or "optional"`, "invalid reason %q", s)
			}
		}
	}

	if len(ps.errs)+ps.dropped > nerr {
		return nil
	}
	return r
}

// accessDstKindHint says why a selector kind cannot be an access
// destination, or "" when it can.
func accessDstKindHint(k selKind) string {
	switch k {
	case selSelf:
		return "a user's own devices need no just-in-time access; name a tag, host or address"
	case selInternet:
		return "just-in-time access covers mesh destinations; give exit-node use a rule in acls"
	case selNone:
		return "it selects nothing in Warren; name a tag, host or address"
	}
	return ""
}

// accessApprovers reads an access rule's approvers: users and groups. It
// returns them normalized (lowercased logins, "group:x") and as written.
func (ps *parser) accessApprovers(v hujson.Value) (norm, written []string) {
	ss, vals := ps.strs(v, "approvers")
	for i, s := range ss {
		sel, ok := ps.selector(s, vals[i], 0, roleSrc)
		if !ok {
			continue
		}
		switch sel.kind {
		case selUser, selGroup:
			if !contains(norm, sel.name) {
				norm = append(norm, sel.name)
				written = append(written, s)
			}
		case selAdmin:
			ps.errorf(vals[i].StartOffset, "list the admins who approve in a group and name that group",
				"autogroup:admin cannot be an approver")
		default:
			ps.errorf(vals[i].StartOffset, "approvers are people: a user login or group:...",
				"%s cannot be an approver", s)
		}
	}
	return norm, written
}

// AccessRules returns the access section's rules in file order.
func (p *Policy) AccessRules() []AccessRule {
	out := make([]AccessRule, len(p.access))
	for i, r := range p.access {
		out[i] = r.pub
		out[i].Src = append([]string(nil), r.pub.Src...)
		out[i].Dst = append([]string(nil), r.pub.Dst...)
		out[i].Approvers = append([]string(nil), r.pub.Approvers...)
	}
	return out
}

// accessRule returns the access rule named ref, or nil.
func (p *Policy) accessRule(ref string) *accessRule {
	for _, r := range p.access {
		if r.pub.Ref == ref {
			return r
		}
	}
	return nil
}

// MatchAccess returns the first access rule that lets node n request dst
// ("tag:prod-db:5432"), or an error wrapping ErrNoAccessRule or
// ErrBadDestination.
func (p *Policy) MatchAccess(n Node, dst string) (AccessRule, error) {
	ds, err := p.parseDst(dst)
	if err != nil {
		return AccessRule{}, err
	}
	if r := p.matchAccess(p.nodeSubject(&n), ds); r != nil {
		return p.AccessRules()[r.index(p)], nil
	}
	return AccessRule{}, fmt.Errorf("%w: no access rule lets %s request %q (see the policy's access section)", ErrNoAccessRule, nodeLabel(&n), dst)
}

func nodeLabel(n *Node) string {
	if len(n.Tags) > 0 {
		return fmt.Sprintf("node %d (%s)", n.ID, strings.Join(n.Tags, ", "))
	}
	if n.User != "" {
		return fmt.Sprintf("node %d (%s)", n.ID, n.User)
	}
	return fmt.Sprintf("node %d", n.ID)
}

func (r *accessRule) index(p *Policy) int {
	for i, x := range p.access {
		if x == r {
			return i
		}
	}
	return -1
}

// matchAccess returns the first access rule whose sources select s and
// whose destinations cover every entry of ds, or nil.
func (p *Policy) matchAccess(s *subject, ds []dstEntry) *accessRule {
	for _, r := range p.access {
		if !r.srcMatches(s) {
			continue
		}
		all := true
		for i := range ds {
			if !r.covers(&ds[i]) {
				all = false
				break
			}
		}
		if all {
			return r
		}
	}
	return nil
}

func (r *accessRule) srcMatches(x *subject) bool {
	for i := range r.src {
		if r.src[i].matches(x) {
			return true
		}
	}
	return false
}

// covers reports whether some destination of r has want's selector (or,
// for addresses, a prefix containing want's) and all of want's ports.
func (r *accessRule) covers(want *dstEntry) bool {
	for i := range r.dst {
		d := &r.dst[i]
		if sameOrWider(&d.sel, &want.sel) && portsWithin(want.ports, d.ports) {
			return true
		}
	}
	return false
}

// sameOrWider reports whether a rule's destination selector have covers a
// requested one want: "*" covers everything, a prefix covers the prefixes
// inside it, and other selectors cover only themselves.
func sameOrWider(have, want *selector) bool {
	switch have.kind {
	case selAll:
		return true
	case selPrefix:
		return want.kind == selPrefix && have.prefix.Addr().BitLen() == want.prefix.Addr().BitLen() &&
			have.prefix.Bits() <= want.prefix.Bits() && have.prefix.Contains(want.prefix.Addr())
	}
	return have.kind == want.kind && have.name == want.name
}

// portsWithin reports whether every range of want lies inside one range of
// have (both sorted and merged).
func portsWithin(want, have []portRange) bool {
	for _, w := range want {
		ok := false
		for _, h := range have {
			if h.first <= w.first && w.last <= h.last {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// parseDst parses dst as an acls destination under p, with ipsets
// expanded. Its errors wrap ErrBadDestination.
func (p *Policy) parseDst(dst string) ([]dstEntry, error) {
	if len(dst) > 1024 {
		return nil, fmt.Errorf("%w: destination is %d bytes long", ErrBadDestination, len(dst))
	}
	lit, err := json.Marshal(dst)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadDestination, err)
	}
	v, err := hujson.Parse(lit)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadDestination, err)
	}
	ps := &parser{diag: newDiag(lit), p: p}
	d, ok := ps.dstEntry(dst, v, roleDst)
	if ok {
		if hint := accessDstKindHint(d.sel.kind); hint != "" {
			ps.errorf(0, hint, "%s cannot be an access destination", d.sel.text)
		}
	}
	if len(ps.errs) > 0 {
		e := ps.errs[0]
		msg := e.Message
		if e.Hint != "" {
			msg += " (" + e.Hint + ")"
		}
		return nil, fmt.Errorf("%w %q: %s; write it like an acls destination, e.g. \"tag:db:5432\"", ErrBadDestination, dst, msg)
	}
	var out []dstEntry
	for _, x := range ps.ipsetSelectors(d.sel, v) {
		e := d
		e.sel = x
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w %q: it selects no address", ErrBadDestination, dst)
	}
	return out, nil
}

// MayApprove reports whether the user login (with identity-provider
// groups idpGroups, as for Node.Groups) is one of the approvers of the
// access rule ref under this policy. It is false for an unknown ref.
func (p *Policy) MayApprove(ref, login string, idpGroups []string) bool {
	r := p.accessRule(ref)
	if r == nil || login == "" {
		return false
	}
	login = strings.ToLower(login)
	groups := p.effectiveGroups(login, idpGroups)
	for _, a := range r.approvers {
		if a == login || (strings.HasPrefix(a, "group:") && contains(groups, a)) {
			return true
		}
	}
	return false
}
