package policy

import (
	"fmt"
	"strconv"

	"github.com/tailscale/hujson"
)

// sshTests, as in Tailscale: assertions on the ssh rules, run on every
// load; a failing one rejects the policy like a failing acls test.
//
//	{"src": "ann@example.com", "dst": ["tag:prod"],
//	 "accept": ["ubuntu"], "check": ["root"], "deny": ["postgres"]}
//
// accept: each user may log in to each dst (by an accept or a check rule);
// check: each may, by a check rule; deny: none may. src is a user, group
// (every member, as in tests) or tag; dst entries are tags, users or
// autogroup:self (src's own devices). Tailscale also resolves addresses
// (an IP or host alias as src, or a single address as dst) to the devices
// that have them; Parse knows no devices, so it accepts such entries with
// a warning and does not check them.

type sshTest struct {
	off       int
	unchecked bool // the source is an address: warned about, not run
	srcs      []*subject
	dsts      []sshTestDst
	accept    []sshTestUser
	check     []sshTestUser
	deny      []sshTestUser
}

type sshTestDst struct {
	sel  selector
	text string
}

type sshTestUser struct {
	name string
	off  int
}

var sshTestFields = []string{"src", "dst", "accept", "check", "deny"}

func (ps *parser) sshTestsSection(v hujson.Value) {
	a, ok := ps.array(v, "sshTests")
	if !ok {
		return
	}
	for i, e := range a.Elements {
		if t := ps.sshTest(i, e); t != nil {
			ps.p.ext.sshTests = append(ps.p.ext.sshTests, t)
		}
	}
}

func (ps *parser) sshTest(i int, v hujson.Value) *sshTest {
	what := "sshTest #" + strconv.Itoa(i+1)
	obj, ok := ps.object(v, what)
	if !ok {
		return nil
	}
	f := ps.fields(obj, what, sshTestFields, nil)
	nerr := len(ps.errs) + ps.dropped
	t := &sshTest{off: v.StartOffset}
	if sv, ok := f["src"]; !ok {
		ps.errorf(v.StartOffset, `add "src": "ann@example.com"`, "%s has no src", what)
	} else if s, ok := ps.str(sv, "sshTest src"); ok {
		if sel, ok := ps.selector(s, sv, 0, roleTestSrc); ok {
			t.srcs = ps.p.subjects(sel)
			if sel.kind == selPrefix {
				t.unchecked = true
				ps.warnf(sv.StartOffset, "test a user, group or tag instead",
					"%s is not checked: SSH sources are identities, and Warren cannot tell which device has %s before it runs", what, s)
			}
		}
	}
	if dv, ok := f["dst"]; !ok {
		ps.errorf(v.StartOffset, `add "dst": ["tag:..."]`, "%s has no dst", what)
	} else {
		ss, vals := ps.strs(dv, "sshTest dst")
		if len(ss) == 0 && len(vals) == 0 {
			ps.errorf(dv.StartOffset, "name the devices to test", "%s has an empty dst", what)
		}
		for j, s := range ss {
			sel, ok := ps.selector(s, vals[j], 0, roleDst)
			if !ok {
				continue
			}
			switch sel.kind {
			case selPrefix:
				if sel.prefix.Addr().Is6() && sel.name == "" {
					// Tailscale fails such a test (recorded:
					// conformance sshtest-malformed-dst-bare-ipv6), where
					// the IPv4 address of the same device passes.
					ps.errorf(vals[j].StartOffset, "name the device by tag or user, or by its IPv4 address",
						"%s: dst %s: an IPv6 address cannot be an sshTests destination", what, s)
					continue
				}
				if !sel.prefix.IsSingleIP() {
					ps.errorf(vals[j].StartOffset, "name one device: tag:..., a user, or autogroup:self",
						"SSH tests dst contains disallowed element %q", s)
					continue
				}
				ps.warnf(vals[j].StartOffset, "name the device by tag or user instead",
					"%s: dst %s is not checked: Warren cannot tell which device has that address before it runs", what, s)
			case selTag, selUser, selSelf:
				t.dsts = append(t.dsts, sshTestDst{sel: sel, text: s})
			default:
				ps.errorf(vals[j].StartOffset, "sshTests destinations are tag:..., a user, a host alias or autogroup:self",
					"%s cannot be an sshTests destination", s)
			}
		}
	}
	users := func(name string) []sshTestUser {
		uv, ok := f[name]
		if !ok {
			return nil
		}
		ss, vals := ps.strs(uv, name)
		out := make([]sshTestUser, 0, len(ss))
		for j, s := range ss {
			if s == "" || s == "*" || s == "autogroup:nonroot" {
				ps.errorf(vals[j].StartOffset, `name one local user, e.g. "root" or "ubuntu"`, "invalid user %q in sshTests %s", s, name)
				continue
			}
			out = append(out, sshTestUser{name: s, off: vals[j].StartOffset})
		}
		return out
	}
	t.accept, t.check, t.deny = users("accept"), users("check"), users("deny")
	_, a := f["accept"]
	_, c := f["check"]
	_, d := f["deny"]
	if !a && !c && !d {
		ps.errorf(v.StartOffset, `add "accept", "check" or "deny": [local users]`, "%s checks nothing", what)
	}
	if len(ps.errs)+ps.dropped > nerr {
		return nil
	}
	return t
}

// runSSHTests evaluates every sshTest against the ssh rules, reporting
// each failing expectation at the user it names.
func (ps *parser) runSSHTests() {
	p := ps.p
	if len(p.ext.sshTests) == 0 || len(ps.errs) > 0 {
		return
	}
	budget := ps.lim.testChecks
	for _, t := range p.ext.sshTests {
		if t.unchecked {
			continue
		}
		for _, src := range t.srcs {
			for _, d := range t.dsts {
				dst := p.sshTestDstSubject(src, d)
				if dst == nil {
					ps.errorf(t.off, "autogroup:self is the source user's own devices; test a user source",
						"sshTests: %s has no devices of its own for autogroup:self", src.label)
					continue
				}
				for _, exp := range []struct {
					users []sshTestUser
					want  string
				}{{t.accept, "accept"}, {t.check, "check"}, {t.deny, "deny"}} {
					for _, u := range exp.users {
						v, n := p.sshAllows(src, dst, u.name)
						if budget -= n; budget < 0 {
							ps.errorf(t.off, "split the sshTests or the ssh rules", "sshTests too large to evaluate")
							return
						}
						if msg := sshTestFailure(exp.want, v); msg != "" {
							ps.errorf(u.off, "change the ssh rules, or the test",
								"ssh test failed: %s logging in to %s as %q %s", src.label, d.text, u.name, msg)
						}
					}
				}
			}
		}
	}
}

// sshTestDstSubject is the device d names for src, or nil for
// autogroup:self when src has no user.
func (p *Policy) sshTestDstSubject(src *subject, d sshTestDst) *subject {
	if d.sel.kind == selSelf {
		u := src.selfUser()
		if u == "" {
			return nil
		}
		return &subject{isNode: true, user: u, groups: src.groups, admin: src.admin, label: d.text}
	}
	subs := p.subjects(d.sel)
	if len(subs) != 1 {
		return nil
	}
	return subs[0]
}

// sshTestFailure explains how verdict v fails expectation want, or "".
func sshTestFailure(want string, v sshVerdict) string {
	got := map[sshVerdict]string{sshDenied: "is denied", sshAccepted: "is accepted (without check)", sshChecked: "is accepted after a check"}[v]
	switch {
	case want == "accept" && v == sshDenied,
		want == "check" && v != sshChecked,
		want == "deny" && v != sshDenied:
		return fmt.Sprintf("%s, but the test expects %s", got, want)
	}
	return ""
}
