package policy

import (
	"strconv"
	"strings"
	"time"

	"github.com/tailscale/hujson"
)

// ssh, as in Tailscale SSH: who may log in to which devices as which
// local users. Warren has no SSH server yet, so the rules are validated
// with Tailscale's rules, stored, checked by sshTests, and NOT enforced:
// Parse warns so, and `policy show` and `policy check` print the warning.
// Port 22 stays governed by acls alone.
//
// What Tailscale allows, and Warren therefore allows:
//   - action: "accept", or "check" (the user re-authenticates within
//     checkPeriod: "always" or a duration from 1m to 168h, 12h when
//     unset; checkPeriod is an error on an accept rule);
//   - src: users, groups, tags, autogroup:member, autogroup:tagged,
//     autogroup:admin — never "*", hosts or addresses;
//   - dst: tags, autogroup:self, autogroup:member, autogroup:tagged,
//     host aliases, and a user only when src is exactly that user —
//     never "*" or groups. Tagged sources (tags, autogroup:tagged) may
//     not reach user-owned devices (a user, autogroup:self,
//     autogroup:member);
//   - users: local user names, "root", autogroup:nonroot (any user but
//     root) and localpart:*@DOMAIN (the local part of the login of a
//     source user in DOMAIN);
//   - acceptEnv: environment variable names, with * and ? wildcards;
//   - recorder and enforceRecorder (session recording): accepted with a
//     warning; Warren records nothing.

type sshRule struct {
	off         int
	check       bool
	checkPeriod time.Duration // 0: the default; -1: always
	src         []selector
	dst         []selector
	users       []string
	acceptEnv   []string
}

// SSHRuleCount returns the number of ssh rules (stored, not enforced).
func (p *Policy) SSHRuleCount() int { return len(p.ext.ssh) }

// SSHTestCount returns the number of sshTests (all of which passed).
func (p *Policy) SSHTestCount() int { return len(p.ext.sshTests) }

const (
	sshCheckDefault = 12 * time.Hour
	sshCheckMin     = time.Minute
	sshCheckMax     = 168 * time.Hour
)

var sshFields = []string{"action", "src", "dst", "users", "checkPeriod", "acceptEnv", "recorder", "enforceRecorder"}

func (ps *parser) sshSection(v hujson.Value) {
	a, ok := ps.array(v, "ssh")
	if !ok {
		return
	}
	for i, e := range a.Elements {
		if r := ps.sshRule(i, e); r != nil {
			ps.p.ext.ssh = append(ps.p.ext.ssh, r)
		}
	}
	if len(a.Elements) > 0 {
		ps.warnf(v.StartOffset, "Warren has no SSH server yet: allow port 22 in acls for ordinary SSH",
			"ssh: %d rule(s) accepted and tested, but NOT enforced", len(a.Elements))
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
	if av, ok := f["action"]; !ok {
		ps.errorf(v.StartOffset, `add "action": "accept" or "check"`, "%s has no action", what)
	} else if s, ok := ps.str(av, "action"); ok {
		switch s {
		case "accept":
		case "check":
			r.check = true
		default:
			ps.errorf(av.StartOffset, `SSH actions are "accept" and "check"`, "invalid SSH action %q", s)
		}
	}
	var dstVals []hujson.Value
	if sv, ok := f["src"]; !ok {
		ps.errorf(v.StartOffset, `add "src": [...]`, "%s has no src", what)
	} else {
		ss, vals := ps.strs(sv, "src")
		for j, s := range ss {
			if sel, ok := ps.sshSrc(s, vals[j]); ok {
				r.src = append(r.src, sel)
			}
		}
	}
	if dv, ok := f["dst"]; !ok {
		ps.errorf(v.StartOffset, `add "dst": [...]`, "%s has no dst", what)
	} else {
		ss, vals := ps.strs(dv, "dst")
		for j, s := range ss {
			if sel, ok := ps.sshDst(s, vals[j]); ok {
				r.dst = append(r.dst, sel)
				dstVals = append(dstVals, vals[j])
			}
		}
	}
	if uv, ok := f["users"]; !ok {
		ps.errorf(v.StartOffset, `add "users": ["autogroup:nonroot"]`, "%s has no users", what)
	} else {
		ss, vals := ps.strs(uv, "users")
		if len(ss) == 0 && len(vals) == 0 {
			ps.errorf(uv.StartOffset, `name the local users, e.g. "autogroup:nonroot" or "root"`, "%s has no users", what)
		}
		for j, s := range ss {
			if hint, msg := sshUserProblem(s); msg != "" {
				ps.errorf(vals[j].StartOffset, hint, "%s", msg)
				continue
			}
			if !contains(r.users, s) {
				r.users = append(r.users, s)
			}
		}
	}
	if cv, ok := f["checkPeriod"]; ok {
		ps.checkPeriod(r, cv)
	}
	if ev, ok := f["acceptEnv"]; ok {
		ss, vals := ps.strs(ev, "acceptEnv")
		for j, s := range ss {
			if !validEnvPattern(s) {
				ps.errorf(vals[j].StartOffset, "environment variable names use letters, digits and _, with * and ? as wildcards",
					"invalid acceptEnv entry %q", s)
				continue
			}
			r.acceptEnv = append(r.acceptEnv, s)
		}
	}
	if rv, ok := f["recorder"]; ok {
		ss, vals := ps.strs(rv, "recorder")
		for j, s := range ss {
			if sel, ok := ps.selector(s, vals[j], 0, roleSrc); ok && sel.kind != selTag {
				ps.errorf(vals[j].StartOffset, "recorders are tagged nodes: tag:...", "invalid recorder %q", s)
			}
		}
		ps.warnf(rv.StartOffset, "Warren records no SSH sessions", "ssh recorder: accepted, has no effect in Warren")
	}
	if ev, ok := f["enforceRecorder"]; ok {
		ps.boolean(ev, "enforceRecorder")
	}
	ps.checkSSHCombination(r, dstVals)
	if len(ps.errs)+ps.dropped > nerr {
		return nil
	}
	return r
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
	case s == "autogroup:admin":
		ps.errorf(v.StartOffset, "SSH destinations may be autogroup:self, autogroup:member or autogroup:tagged",
			"autogroup:admin cannot be an SSH destination")
		return selector{}, false
	case strings.HasPrefix(s, "autogroup:") && !contains([]string{"autogroup:self", "autogroup:member", "autogroup:tagged"}, s):
		ps.errorf(v.StartOffset, "SSH destinations may be autogroup:self, autogroup:member or autogroup:tagged", "%s cannot be an SSH destination", s)
		return selector{}, false
	}
	sel, ok := ps.selector(s, v, 0, roleDst)
	if ok && sel.kind == selPrefix && sel.name == "" {
		ps.errorf(v.StartOffset, `name the device with a tag, or give the address a name in "hosts"`, "%s: a bare address cannot be an SSH destination", s)
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

// checkPeriod reads checkPeriod: "always" or a duration from 1m to 168h,
// on check rules only.
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
	d, err := parseDuration(s)
	switch {
	case err != nil:
		ps.errorf(v.StartOffset, `write "always" or a duration such as "12h"`, "invalid checkPeriod %q: %v", s, err)
	case d < sshCheckMin || d > sshCheckMax:
		ps.errorf(v.StartOffset, "write a duration from 1m to 168h, or \"always\"", "checkPeriod %s is out of range", s)
	default:
		r.checkPeriod = d
	}
}

// sshUserProblem returns a hint and message when s is not a valid entry
// of an SSH rule's users, or "", "".
func sshUserProblem(s string) (hint, msg string) {
	switch {
	case s == "":
		return `name a local user, "root" or "autogroup:nonroot"`, "empty SSH user"
	case strings.HasPrefix(s, "autogroup:"):
		if s == "autogroup:nonroot" {
			return "", ""
		}
		return "the only SSH user autogroup is autogroup:nonroot", "unknown SSH user autogroup " + strconv.Quote(s)
	case strings.HasPrefix(s, "localpart:"):
		dom, ok := strings.CutPrefix(s, "localpart:*@")
		if !ok || dom == "" || strings.ContainsAny(dom, "@*") {
			return `write "localpart:*@example.com"`, "invalid SSH user " + strconv.Quote(s)
		}
		return "", ""
	}
	if len(s) > 256 {
		return "local user names are short", "SSH user name too long"
	}
	for _, c := range s {
		if c <= ' ' || c == 0x7f || c == ':' || c == '/' || c == '"' {
			return "local user names have no spaces, ':' or '/'", "invalid SSH user " + strconv.Quote(s)
		}
	}
	return "", ""
}

// validEnvPattern reports whether s is an environment variable name,
// possibly with * and ? wildcards.
func validEnvPattern(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '*', c == '?':
		default:
			return false
		}
	}
	return true
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
// asks whether a check rule applies. n counts the rules looked at.
func (p *Policy) sshAllows(src, dst *subject, user string) (v sshVerdict, n int) {
	for _, r := range p.ext.ssh {
		n++
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
		case u == user:
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
