package policy

import (
	"fmt"
	"strings"
	"time"

	"github.com/tailscale/hujson"
)

// policyTest is one entry of the tests section.
type policyTest struct {
	off      int
	srcText  string
	srcs     []*subject
	proto    int
	accept   []testDst
	deny     []testDst
	attrs    map[string]string
	at       time.Time
	mfaAge   time.Duration
	mfaKnown bool
	// canRequest and cannotRequest are access-section checks: whether
	// the source may request each destination (access_tests.go).
	canRequest, cannotRequest []testAccess
}

type testDst struct {
	subj *subject
	port uint16
	off  int
	text string
}

var testFields = []string{"src", "proto", "accept", "deny", "srcPostureAttrs", "at", "mfaAge", "canRequest", "cannotRequest"}

func (ps *parser) testsSection(v hujson.Value) {
	a, ok := ps.array(v, "tests")
	if !ok {
		return
	}
	for i, e := range a.Elements {
		if t := ps.test(i, e); t != nil {
			ps.p.tests = append(ps.p.tests, t)
		}
	}
}

func (ps *parser) test(i int, v hujson.Value) *policyTest {
	what := fmt.Sprintf("test #%d", i+1)
	obj, ok := ps.object(v, what)
	if !ok {
		return nil
	}
	f := ps.fields(obj, what, testFields, map[string]string{
		"user": `"user" is the legacy name of "src"; use "src"`,
	})
	nerr := len(ps.errs) + ps.dropped
	t := &policyTest{off: v.StartOffset, proto: protoTCP}
	if sv, ok := f["src"]; !ok {
		ps.errorf(v.StartOffset, `add "src": "ann@example.com"`, "%s has no src", what)
	} else if s, ok := ps.str(sv, "test src"); ok {
		if sel, ok := ps.selector(s, sv, 0, roleTestSrc); ok {
			t.srcText = s
			t.srcs = ps.p.subjects(sel)
		}
	}
	if pv, ok := f["proto"]; ok {
		if s, ok := ps.str(pv, "proto"); ok {
			protos, hint, err := parseProto(s)
			if err != nil {
				ps.errorf(pv.StartOffset, hint, "%v", err)
			} else {
				t.proto = protos[0]
			}
		}
	}
	dsts := func(name string) []testDst {
		dv, ok := f[name]
		if !ok {
			return nil
		}
		ss, vals := ps.strs(dv, name)
		var out []testDst
		for j, s := range ss {
			if i := strings.LastIndexByte(s, ':'); i > 0 && strings.Contains(s[:i], "/") {
				// Tailscale fails such a test (recorded answers of its
				// control plane: even a /32): a test checks one address.
				ps.errorf(vals[j].StartOffset, "name one address or host, e.g. 100.64.0.16:22",
					"%s: %q is a prefix; a test checks one destination address", name, s)
				continue
			}
			d, ok := ps.dstEntry(s, vals[j], roleTestDst)
			if !ok {
				continue
			}
			subs := ps.p.subjects(d.sel)
			if len(subs) != 1 {
				continue
			}
			out = append(out, testDst{subj: subs[0], port: d.ports[0].first, off: vals[j].StartOffset, text: s})
		}
		return out
	}
	t.accept = dsts("accept")
	t.deny = dsts("deny")
	t.canRequest = ps.testAccessDsts(f, "canRequest")
	t.cannotRequest = ps.testAccessDsts(f, "cannotRequest")
	if !hasAny(f, "accept", "deny", "canRequest", "cannotRequest") {
		ps.errorf(v.StartOffset, `add "accept": [...] or "deny": [...] (or "canRequest" / "cannotRequest" for the access section)`, "%s checks nothing", what)
	}
	if av, ok := f["srcPostureAttrs"]; ok {
		t.attrs = map[string]string{}
		for _, m := range ps.entries(av, "srcPostureAttrs") {
			name := m.Name.Value.(hujson.Literal).String()
			ns, attr, ok := strings.Cut(name, ":")
			if !ok || !validName(ns) || !validName(attr) {
				ps.errorf(m.Name.StartOffset, "attributes are namespace:name, e.g. node:os", "invalid attribute %q", name)
				continue
			}
			lit, isLit := m.Value.Value.(hujson.Literal)
			switch {
			case isLit && lit.Kind() == '"':
				t.attrs[name] = lit.String()
			case isLit && (lit.Kind() == 't' || lit.Kind() == 'f' || lit.Kind() == '0'):
				t.attrs[name] = string(lit)
			default:
				ps.errorf(m.Value.StartOffset, "attribute values are strings, numbers or booleans", "invalid value for %s", name)
			}
		}
	}
	if atv, ok := f["at"]; ok {
		if s, ok := ps.str(atv, "at"); ok {
			tm, err := time.Parse(time.RFC3339, s)
			if err != nil {
				ps.errorf(atv.StartOffset, `write an RFC 3339 time such as "2026-11-25T10:00:00+09:00"`, "invalid time %q", s)
			}
			t.at = tm
		}
	}
	if mv, ok := f["mfaAge"]; ok {
		if s, ok := ps.str(mv, "mfaAge"); ok {
			d, err := parseDuration(s)
			if err != nil && s != "0s" && s != "0" {
				ps.errorf(mv.StartOffset, `write a duration such as "1h" or "30m"`, "invalid mfaAge %q: %v", s, err)
			}
			t.mfaAge, t.mfaKnown = d, true
		}
	}
	if len(ps.errs)+ps.dropped > nerr {
		return nil
	}
	for _, s := range t.srcs {
		s.attrs = t.attrs
	}
	return t
}

// runTests evaluates every test against the rules, reporting each failing
// expectation at its position.
func (ps *parser) runTests() {
	p := ps.p
	if len(p.tests) == 0 || len(ps.errs) > 0 {
		return
	}
	budget := ps.lim.testChecks
	for _, t := range p.tests {
		ps.runAccessTests(t)
		for _, src := range t.srcs {
			for _, d := range t.accept {
				f := t.flow(src, d)
				r, n := p.allows(f)
				if budget -= n; budget < 0 {
					ps.errorf(t.off, "split the tests or the rules", "tests too large to evaluate")
					return
				}
				if r != nil {
					continue
				}
				hint := "no rule comes close"
				if len(ps.errs) >= maxErrors {
					hint = "" // not shown
				} else if c := p.nearMisses(f, 1); len(c) > 0 {
					hint = fmt.Sprintf("closest is %s: %s", c[0].Rule, strings.Join(c[0].Reasons, "; "))
				}
				ps.errorf(d.off, hint, "test failed: %s cannot reach %s over %s, but the test expects accept", src.label, d.text, protoName(t.proto))
			}
			for _, d := range t.deny {
				f := t.flow(src, d)
				r, n := p.allows(f)
				if budget -= n; budget < 0 {
					ps.errorf(t.off, "split the tests or the rules", "tests too large to evaluate")
					return
				}
				if r == nil {
					continue
				}
				ref := p.ruleRef(r)
				ps.errorf(d.off, fmt.Sprintf("narrow %s, or change the test", ref),
					"test failed: %s can reach %s over %s through %s, but the test expects deny", src.label, d.text, protoName(t.proto), ref)
			}
		}
	}
}

func (t *policyTest) flow(src *subject, d testDst) *flow {
	return &flow{src: src, dst: d.subj, proto: t.proto, port: d.port, at: t.at, mfaAge: t.mfaAge, mfaKnown: t.mfaKnown}
}
