package policy

import (
	"fmt"

	"github.com/tailscale/hujson"
)

// The tests section's access checks: an entry's "canRequest" and
// "cannotRequest" list destinations (written like an acls destination,
// "tag:prod-db:5432") that the entry's src may, or may not, request under
// the access section. A group source is checked for each of its listed
// members and for a member known only to the identity provider, as the
// acls checks do.

// testAccess is one destination of canRequest or cannotRequest.
type testAccess struct {
	dst  []dstEntry
	off  int
	text string
}

func hasAny(f map[string]hujson.Value, names ...string) bool {
	for _, n := range names {
		if _, ok := f[n]; ok {
			return true
		}
	}
	return false
}

// testAccessDsts reads the destinations of field name of a tests entry.
func (ps *parser) testAccessDsts(f map[string]hujson.Value, name string) []testAccess {
	v, ok := f[name]
	if !ok {
		return nil
	}
	ss, vals := ps.strs(v, name)
	var out []testAccess
	for i, s := range ss {
		d, ok := ps.dstEntry(s, vals[i], roleDst)
		if !ok {
			continue
		}
		if hint := accessDstKindHint(d.sel.kind); hint != "" {
			ps.errorf(vals[i].StartOffset, hint, "%s cannot be an access destination", d.sel.text)
			continue
		}
		ta := testAccess{off: vals[i].StartOffset, text: s}
		for _, x := range ps.ipsetSelectors(d.sel, vals[i]) {
			e := d
			e.sel = x
			ta.dst = append(ta.dst, e)
		}
		if len(ta.dst) > 0 {
			out = append(out, ta)
		}
	}
	return out
}

// runAccessTests reports each failing canRequest and cannotRequest check
// of t at the destination's position.
func (ps *parser) runAccessTests(t *policyTest) {
	p := ps.p
	for _, src := range t.srcs {
		for _, d := range t.canRequest {
			if p.matchAccess(src, d.dst) != nil {
				continue
			}
			ps.errorf(d.off, "add an access rule whose src selects it and whose dst covers this destination, or change the test",
				"test failed: %s cannot request %s, but the test expects it can", src.label, d.text)
		}
		for _, d := range t.cannotRequest {
			if r := p.matchAccess(src, d.dst); r != nil {
				ps.errorf(d.off, fmt.Sprintf("narrow %s, or change the test", r.pub.Ref),
					"test failed: %s can request %s through %s, but the test expects it cannot", src.label, d.text, r.pub.Ref)
			}
		}
	}
}
