package policy

import (
	"strconv"
	"strings"
	"time"

	"github.com/tailscale/hujson"
)

// ssh, as in Tailscale SSH: who may log in to which devices as which
// local users. The rules are validated with Tailscale's rules, checked by
// sshTests, and compiled for each destination node into a wire.SSHPolicy
// (sshcompile.go) that the node's SSH server (warrend --ssh) enforces.
// SSH rules grant no network access: port 22 must be allowed by acls or
// grants, as in Tailscale.
//
// What Tailscale accepts, and Warren therefore accepts, as its docs say
// and as recordings of its control plane's answers (published with
// juanfont/headscale's policy tests) show:
//   - action: "accept", or "check" (the user re-authenticates within
//     checkPeriod: "always" or a duration up to 168h, 12h when unset or
//     0; negative or longer periods are refused; checkPeriod on an accept
//     rule is refused, as Headscale does);
//   - src: users, user:*@DOMAIN, groups, tags, autogroup:member,
//     autogroup:tagged, autogroup:admin; never "*" or addresses;
//   - dst: tags, autogroup:self, autogroup:member, autogroup:tagged, and
//     a user only when src is exactly that user; never "*", groups, host
//     aliases or addresses ("invalid dst"). Tagged sources (tags,
//     autogroup:tagged) may not reach user-owned devices (a user,
//     autogroup:self, autogroup:member);
//   - a rule without src or dst matches nothing (accepted, with a warning);
//   - users: required and non-empty; "" and "*" are refused; anything
//     else is a local user name, except autogroup:nonroot (any user but
//     root) and localpart:*@DOMAIN (the local part of a source user's
//     login in DOMAIN). Names Tailscale accepts that cannot be local
//     users (autogroup:member, tag:x, "localpart:") draw a warning and
//     match no login;
//   - acceptEnv: any non-empty patterns;
//   - spaces around names and the action are ignored (with a warning),
//     and null stands for an absent field;
//   - recorder (tags of the recorder nodes; none: the coordinator
//     records when the destination has the warren:ssh-record attribute)
//     and enforceRecorder (false: a session no recorder takes goes on
//     unrecorded). Unlike Tailscale, Warren fails closed by default: a
//     rule with recorders refuses the session when none takes it unless
//     enforceRecorder is false;
//   - portForwarding (Warren's own, default false): the rule allows
//     local port forwarding (ssh -L).
//
// Tailscale also refuses a DOMAIN (in user:*@ and localpart:*@) that is
// not one of the tailnet's own; Warren has no list of its domains and
// accepts any.

type sshRule struct {
	off         int
	check       bool
	checkPeriod time.Duration // 0: the default; -1: always
	src         []selector
	srcDomains  []string // user:*@DOMAIN sources, lowercased
	dst         []selector
	users       []string
	acceptEnv   []string
	recorders   []string // recorder tags
	failOpen    bool     // enforceRecorder: false
	portFwd     bool     // portForwarding: true
	index       int      // place in the ssh section: "ssh[index]"
}

// SSHRuleCount returns the number of ssh rules.
func (p *Policy) SSHRuleCount() int { return len(p.ext.ssh) }

// SSHTestCount returns the number of sshTests (all of which passed).
func (p *Policy) SSHTestCount() int { return len(p.ext.sshTests) }

const (
	sshCheckMax = 168 * time.Hour
)

var sshFields = []string{"action", "src", "dst", "users", "checkPeriod", "acceptEnv", "recorder", "enforceRecorder", "portForwarding"}

func (ps *parser) sshSection(v hujson.Value) {
	a, ok := ps.array(v, "ssh")
	if !ok {
		return
	}
	for i, e := range a.Elements {
		if r := ps.sshRule(i, e); r != nil {
			r.index = i
			ps.p.ext.ssh = append(ps.p.ext.ssh, r)
		}
	}
}

func (ps *parser) sshRule(i int, v hujson.Value) *sshRule {
	what := "ssh rule #" + strconv.Itoa(i+1)
	obj, ok := ps.object(v, what)
	if !ok {
		return nil
	}
	f := ps.fields(obj, what, sshFields, nil)
	nerr := len(ps.errs) + ps.dropped
	r := &sshRule{off: v.StartOffset}
	trimmed := false // warned about spaces in this rule
	if av, ok := f["action"]; !ok || isNull(av) {
		ps.errorf(v.StartOffset, `add "action": "accept" or "check"`, "%s has no action", what)
	} else if s, ok := ps.str(av, "action"); ok {
		switch ps.trimSSH(s, av, &trimmed) {
		case "accept":
		case "check":
			r.check = true
		case "":
			ps.errorf(av.StartOffset, `write "accept" or "check"`, "%s has no action", what)
		default:
			ps.errorf(av.StartOffset, `SSH actions are "accept" and "check", in lower case`, "invalid SSH action %q", s)
		}
	}
	// A rule without src or dst matches nothing; Tailscale accepts it.
	if sv, ok := f["src"]; ok && !isNull(sv) {
		ss, vals := ps.strs(sv, "src")
		for j, s := range ss {
			s = ps.trimSSH(s, vals[j], &trimmed)
			if dom, ok := strings.CutPrefix(s, "user:*@"); ok {
				if ps.sshDomain(dom, s, vals[j]) && !contains(r.srcDomains, strings.ToLower(dom)) {
					r.srcDomains = append(r.srcDomains, strings.ToLower(dom))
				}
				continue
			}
			if sel, ok := ps.sshSrc(s, vals[j]); ok {
				r.src = append(r.src, sel)
			}
		}
	}
	var dstVals []hujson.Value
	if dv, ok := f["dst"]; ok && !isNull(dv) {
		ss, vals := ps.strs(dv, "dst")
		for j, s := range ss {
			if sel, ok := ps.sshDst(ps.trimSSH(s, vals[j], &trimmed), vals[j]); ok {
				r.dst = append(r.dst, sel)
				dstVals = append(dstVals, vals[j])
			}
		}
	}
	if len(r.src)+len(r.srcDomains) == 0 || len(r.dst) == 0 {
		ps.warnf(v.StartOffset, "give it a src and a dst, or remove it", "%s has no src or no dst: it matches nothing", what)
	}
	if uv, ok := f["users"]; !ok || isNull(uv) {
		ps.errorf(v.StartOffset, `add "users": ["autogroup:nonroot"]`, "%s has no users", what)
	} else {
		ss, vals := ps.strs(uv, "users")
		if len(ss) == 0 && len(vals) == 0 {
			ps.errorf(uv.StartOffset, `name the local users, e.g. "autogroup:nonroot" or "root"`, "%s has no users", what)
		}
		for j, s := range ss {
			s = ps.trimSSH(s, vals[j], &trimmed)
			if !ps.sshUser(s, vals[j]) {
				continue
			}
			if !contains(r.users, s) {
				r.users = append(r.users, s)
			}
		}
	}
	if cv, ok := f["checkPeriod"]; ok && !isNull(cv) {
		ps.checkPeriod(r, cv)
	}
	if ev, ok := f["acceptEnv"]; ok && !isNull(ev) {
		ss, vals := ps.strs(ev, "acceptEnv")
		for j, s := range ss {
			if s == "" {
				ps.errorf(vals[j].StartOffset, "name an environment variable, with * and ? as wildcards", "acceptEnv values cannot be empty")
				continue
			}
			r.acceptEnv = append(r.acceptEnv, s)
		}
	}
	if rv, ok := f["recorder"]; ok && !isNull(rv) {
		ss, vals := ps.strs(rv, "recorder")
		for j, s := range ss {
			if sel, ok := ps.selector(s, vals[j], 0, roleSrc); ok && sel.kind != selTag {
				ps.errorf(vals[j].StartOffset, "recorders are tagged nodes: tag:...", "invalid recorder %q", s)
			} else if ok && !contains(r.recorders, sel.name) {
				r.recorders = append(r.recorders, sel.name)
			}
		}
	}
	if ev, ok := f["enforceRecorder"]; ok && !isNull(ev) {
		if b, ok := ps.boolean(ev, "enforceRecorder"); ok {
			r.failOpen = !b
		}
	}
	if pv, ok := f["portForwarding"]; ok && !isNull(pv) {
		r.portFwd, _ = ps.boolean(pv, "portForwarding")
	}
	ps.checkSSHCombination(r, dstVals)
	if len(ps.errs)+ps.dropped > nerr {
		return nil
	}
	return r
}

// isNull reports whether v is the literal null, which Tailscale reads as
// an absent field.
func isNull(v hujson.Value) bool {
	l, ok := v.Value.(hujson.Literal)
	return ok && l.Kind() == 'n'
}

// trimSSH removes spaces around s, as Tailscale does in ssh rules, and
// warns once per rule that it did.
func (ps *parser) trimSSH(s string, v hujson.Value, warned *bool) string {
	t := strings.TrimSpace(s)
	if t != s && !*warned {
		*warned = true
		ps.warnf(v.StartOffset, "remove the spaces", "spaces around %q are ignored", t)
	}
	return t
}

// sshDomain checks the domain of a user:*@DOMAIN source or a
// localpart:*@DOMAIN user. Tailscale also requires the domain to be one
// of the tailnet's; Warren has no such list and accepts any domain.
func (ps *parser) sshDomain(dom, s string, v hujson.Value) bool {
	if dom == "" || strings.ContainsAny(dom, "@*/: \t") {
		ps.errorf(v.StartOffset, "write a domain, e.g. *@example.com", "invalid domain in %q", s)
		return false
	}
	return true
}

// sshUser checks one entry of an ssh rule's users. Tailscale refuses ""
// and "*" and takes anything else as a local user name (autogroup:nonroot
// and localpart:*@DOMAIN have their own meaning); an entry that cannot be
// a local user name is accepted with a warning, and matches no login.
func (ps *parser) sshUser(s string, v hujson.Value) bool {
	switch {
	case s == "" || s == "*":
		ps.errorf(v.StartOffset, `name local users, "root", or "autogroup:nonroot" for every user but root`, "user %q is not valid", s)
		return false
	case s == "autogroup:nonroot", s == "root":
		return true
	case strings.HasPrefix(s, "localpart:*@") && s != "localpart:*@":
		return ps.sshDomain(strings.TrimPrefix(s, "localpart:*@"), s, v)
	case strings.HasPrefix(s, "localpart:"):
		ps.warnf(v.StartOffset, `write "localpart:*@example.com"`, "ssh user %q is not a localpart:*@DOMAIN pattern: it matches only that literal name", s)
	case strings.HasPrefix(s, "autogroup:"), strings.HasPrefix(s, "group:"), strings.HasPrefix(s, "tag:"):
		ps.warnf(v.StartOffset, `the only special SSH user is "autogroup:nonroot"`, "ssh user %q is not a local user name: it matches no login", s)
	}
	return true
}

// sshSrc parses an SSH source: users, groups, tags and user or tag
// autogroups.
func (ps *parser) sshSrc(s string, v hujson.Value) (selector, bool) {
	switch {
	case s == "*":
		ps.errorf(v.StartOffset, "name users, group:..., tag:..., autogroup:member or autogroup:tagged", `"*" cannot be an SSH source`)
		return selector{}, false
	case strings.HasPrefix(s, "autogroup:") && !contains([]string{"autogroup:member", "autogroup:tagged", "autogroup:admin"}, s):
		ps.errorf(v.StartOffset, "SSH sources may be autogroup:member, autogroup:tagged or autogroup:admin", "%s cannot be an SSH source", s)
		return selector{}, false
	}
	sel, ok := ps.selector(s, v, 0, roleSrc)
	if ok && sel.kind == selPrefix {
		ps.errorf(v.StartOffset, "SSH sources are identities: users, group:... or tag:...", "%s: an address cannot be an SSH source", s)
		return selector{}, false
	}
	return sel, ok
}

// sshDst parses an SSH destination: devices, never "*" or groups.
func (ps *parser) sshDst(s string, v hujson.Value) (selector, bool) {
	switch {
	case s == "*":
		ps.errorf(v.StartOffset, "use autogroup:member for user-owned devices, autogroup:tagged for tagged ones, or name tags",
			`"*" cannot be an SSH destination`)
		return selector{}, false
	case strings.HasPrefix(s, "group:"):
		ps.errorf(v.StartOffset, "SSH destinations are devices: use autogroup:self for each user's own devices, or tags",
			"a group cannot be an SSH destination")
		return selector{}, false
	case strings.HasPrefix(s, "user:*@"):
		ps.errorf(v.StartOffset, "SSH destinations are devices: use autogroup:self for each user's own devices, or tags",
			"%s cannot be an SSH destination", s)
		return selector{}, false
	case s == "autogroup:admin":
		ps.errorf(v.StartOffset, "SSH destinations may be autogroup:self, autogroup:member or autogroup:tagged",
			"autogroup:admin cannot be an SSH destination")
		return selector{}, false
	case strings.HasPrefix(s, "autogroup:") && !contains([]string{"autogroup:self", "autogroup:member", "autogroup:tagged"}, s):
		ps.errorf(v.StartOffset, "SSH destinations may be autogroup:self, autogroup:member or autogroup:tagged", "%s cannot be an SSH destination", s)
		return selector{}, false
	}
	sel, ok := ps.selector(s, v, 0, roleDst)
	if ok && sel.kind == selPrefix {
		ps.errorf(v.StartOffset, "SSH destinations are devices: name them with tag:..., autogroup:self, autogroup:member or autogroup:tagged",
			"invalid dst %q: host aliases and addresses cannot be SSH destinations", s)
		return selector{}, false
	}
	return sel, ok
}

// checkSSHCombination applies Tailscale's rules on which sources may
// reach which destinations: tagged sources never reach user-owned
// devices, and a user destination only its own user.
func (ps *parser) checkSSHCombination(r *sshRule, dstVals []hujson.Value) {
	tagged, many := false, false
	users := map[string]bool{}
	for _, s := range r.src {
		switch s.kind {
		case selTag, selTagged:
			tagged = true
		case selUser:
			users[s.name] = true
		default:
			many = true
		}
	}
	for i, d := range r.dst {
		off := dstVals[i].StartOffset
		switch d.kind {
		case selUser:
			if tagged {
				ps.errorf(off, "tagged sources reach tagged devices: name tags or autogroup:tagged", "tagged sources cannot SSH to %s's devices", d.text)
			} else if many || len(users) != 1 || !users[d.name] {
				ps.errorf(off, "use autogroup:self to let each user reach their own devices",
					"SSH destination %s requires src to be exactly that user", d.text)
			}
		case selSelf, selMember:
			if tagged {
				ps.errorf(off, "tagged sources reach tagged devices: name tags or autogroup:tagged",
					"tagged sources cannot SSH to user-owned devices (%s)", d.text)
			}
		}
	}
}

// checkPeriod reads checkPeriod: "always" or a duration up to 168h, on
// check rules only. Tailscale documents 1m as the least; it accepts less
// (0 is the default of 12h).
func (ps *parser) checkPeriod(r *sshRule, v hujson.Value) {
	s, ok := ps.str(v, "checkPeriod")
	if !ok {
		return
	}
	if !r.check {
		ps.errorf(v.StartOffset, `remove it, or make the action "check"`, `checkPeriod is only valid with action "check"`)
		return
	}
	if s == "always" {
		r.checkPeriod = -1
		return
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		if d, err = parseDuration(s); err != nil {
			ps.errorf(v.StartOffset, `write "always" or a duration such as "12h"`, "invalid checkPeriod %q: %v", s, err)
			return
		}
	}
	switch {
	case d < 0:
		ps.errorf(v.StartOffset, `write "always" or a duration such as "12h"`, "checkPeriod %s must be a positive duration", s)
	case d > sshCheckMax:
		ps.errorf(v.StartOffset, "write a duration up to 168h, or \"always\"", "checkPeriod %s is above the max (168h)", s)
	default:
		r.checkPeriod = d
	}
}

// sshVerdict is what an SSH rule set answers for one login.
type sshVerdict uint8

const (
	sshDenied sshVerdict = iota
	sshAccepted
	sshChecked // accepted by a check rule
)

// sshAllows evaluates the rules for src logging in to dst as user. A
// check rule's answer wins over an accept rule's, as a check-expectation
// asks whether a check rule applies. n counts the selectors and users
// looked at, for the tests' work budget.
func (p *Policy) sshAllows(src, dst *subject, user string) (v sshVerdict, n int) {
	for _, r := range p.ext.ssh {
		n += 1 + len(r.src) + len(r.srcDomains) + len(r.dst) + len(r.users) // the work of one rule
		if !r.matchesSrc(src) || !r.matchesDst(src, dst) || !r.allowsUser(src, user) {
			continue
		}
		if r.check {
			return sshChecked, n
		}
		v = sshAccepted
	}
	return v, n
}

func (r *sshRule) matchesSrc(s *subject) bool {
	if s.isNode && !s.tagged {
		for _, d := range r.srcDomains {
			if _, dom, ok := strings.Cut(s.user, "@"); ok && strings.EqualFold(dom, d) {
				return true
			}
		}
	}
	for i := range r.src {
		if r.src[i].matches(s) {
			return true
		}
	}
	return false
}

// matchesDst reports whether a destination of r selects dst for src
// (autogroup:self: dst is one of src's user's own untagged devices).
func (r *sshRule) matchesDst(src, dst *subject) bool {
	for i := range r.dst {
		d := &r.dst[i]
		if d.kind == selSelf {
			if u := src.selfUser(); u != "" && dst.selfUser() == u {
				return true
			}
			continue
		}
		if d.matches(dst) {
			return true
		}
	}
	return false
}

func (r *sshRule) allowsUser(src *subject, user string) bool {
	for _, u := range r.users {
		switch {
		case u == user && !strings.Contains(u, ":"): // no local user has a ':' in its name
			return true
		case u == "autogroup:nonroot":
			if user != "root" {
				return true
			}
		case strings.HasPrefix(u, "localpart:*@"):
			dom := strings.TrimPrefix(u, "localpart:*@")
			local, d, ok := strings.Cut(src.user, "@")
			if ok && !src.tagged && strings.EqualFold(d, dom) && local == user {
				return true
			}
		}
	}
	return false
}
