package policy

import (
	"fmt"
	"strings"
	"time"
)

// flow is one hypothetical connection, evaluated symbolically by tests and
// Explain.
type flow struct {
	src, dst *subject
	proto    int
	port     uint16
	at       time.Time // zero: unknown, so no time window holds
	mfaAge   time.Duration
	mfaKnown bool // the source's owner has an MFA login of age mfaAge
}

// verdict is how one rule judged a flow.
type verdict struct {
	ok      bool
	passed  int      // checks passed
	reasons []string // why it did not allow the flow
}

// defaultProtos are the protocols of a rule without "proto".
var defaultProtos = []int{protoICMP, protoTCP, protoUDP, protoICMPv6}

func hasPorts(proto int) bool {
	return proto == protoTCP || proto == protoUDP || proto == protoSCTP
}

func protoName(n int) string {
	switch n {
	case protoICMP:
		return "icmp"
	case protoTCP:
		return "tcp"
	case protoUDP:
		return "udp"
	case protoICMPv6:
		return "ipv6-icmp"
	case protoSCTP:
		return "sctp"
	}
	for name, v := range protoNames {
		if v == n && !strings.Contains(name, "-") {
			return name
		}
	}
	return fmt.Sprintf("protocol %d", n)
}

func protoList(ps []int) string {
	if ps == nil {
		return "tcp, udp, icmp"
	}
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = protoName(p)
	}
	return strings.Join(names, ", ")
}

func inPorts(rs []portRange, port uint16) bool {
	for _, r := range rs {
		if port >= r.first && port <= r.last {
			return true
		}
	}
	return false
}

func portsText(rs []portRange) string {
	if isAllPorts(rs) {
		return "*"
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		if r.first == r.last {
			parts[i] = fmt.Sprint(r.first)
		} else {
			parts[i] = fmt.Sprintf("%d-%d", r.first, r.last)
		}
	}
	return strings.Join(parts, ",")
}

// Each check below is one condition of a rule on a flow. matchRule uses
// them to decide quickly; evalRule also says why a rule failed.

// dstCheck reports whether a destination of r selects f.dst, and whether
// one that does also has f's port.
func dstCheck(r *rule, f *flow) (dstMatch, portMatch bool) {
	for i := range r.dst {
		d := &r.dst[i]
		if !d.selects(f) {
			continue
		}
		dstMatch = true
		if !hasPorts(f.proto) || inPorts(d.ports, f.port) {
			return true, true
		}
	}
	return dstMatch, false
}

// selects reports whether d's selector selects f's destination.
func (d *dstEntry) selects(f *flow) bool {
	if d.sel.kind == selSelf {
		u := f.src.selfUser()
		return u != "" && u == f.dst.selfUser()
	}
	if !f.dst.isNode {
		return d.sel.matchesRouted(f.dst)
	}
	return d.sel.matches(f.dst)
}

func protoCheck(r *rule, f *flow) bool {
	if r.protos == nil {
		return containsProto(defaultProtos, f.proto)
	}
	return containsProto(r.protos, f.proto)
}

func srcCheck(r *rule, f *flow) bool {
	if r.conditional && !f.src.isNode {
		return false
	}
	return r.srcMatches(f.src)
}

func (p *Policy) postureCheck(r *rule, f *flow) bool {
	if len(r.postures) == 0 {
		return true
	}
	for _, pi := range r.postures {
		if ok, _ := p.postures[pi].check(f.src.attrs); ok {
			return true
		}
	}
	return false
}

func whenCheck(r *rule, f *flow) bool {
	return r.when == nil || (!f.at.IsZero() && r.when.active(f.at))
}

func mfaCheck(r *rule, f *flow) bool {
	return r.mfa == 0 || (f.src.isNode && !f.src.tagged && f.mfaKnown && f.mfaAge <= r.mfa)
}

// matchRule reports whether r allows f.
func (p *Policy) matchRule(r *rule, f *flow) bool {
	if _, port := dstCheck(r, f); !port {
		return false
	}
	return protoCheck(r, f) && srcCheck(r, f) && p.postureCheck(r, f) && whenCheck(r, f) && mfaCheck(r, f)
}

// evalRule checks every condition of r against f and says why each that
// fails does.
func (p *Policy) evalRule(r *rule, f *flow) verdict {
	var v verdict
	pass := func(ok bool, why func() string) {
		if ok {
			v.passed++
		} else {
			v.reasons = append(v.reasons, why())
		}
	}

	dstMatch, portMatch := dstCheck(r, f)
	pass(dstMatch, func() string {
		why := fmt.Sprintf("dst: %s is not among %s", f.dst.label, dstTexts(r))
		if r.hasSelf {
			why += " (autogroup:self is the source's own untagged devices)"
		}
		return why
	})
	if dstMatch {
		pass(portMatch, func() string {
			var wanted []string
			for i := range r.dst {
				if d := &r.dst[i]; d.selects(f) {
					wanted = append(wanted, portsText(d.ports))
				}
			}
			return fmt.Sprintf("port: %d is not in %s", f.port, strings.Join(wanted, " or "))
		})
	}
	pass(protoCheck(r, f), func() string {
		return fmt.Sprintf("proto: %s is not %s", protoName(f.proto), protoList(r.protos))
	})
	pass(srcCheck(r, f), func() string {
		if r.conditional && !f.src.isNode {
			return fmt.Sprintf("src: %s is an address, and only nodes can satisfy srcPosture or mfa", f.src.label)
		}
		return fmt.Sprintf("src: %s is not among %s", f.src.label, selTexts(r.src))
	})
	if len(r.postures) > 0 {
		pass(p.postureCheck(r, f), func() string {
			var whys []string
			for _, pi := range r.postures {
				po := p.postures[pi]
				_, why := po.check(f.src.attrs)
				whys = append(whys, fmt.Sprintf("%s failed because %s", po.name, why))
			}
			return "posture: " + strings.Join(whys, "; ")
		})
	}
	if r.when != nil {
		pass(whenCheck(r, f), func() string {
			if f.at.IsZero() {
				return fmt.Sprintf("when: no time given, and the rule is active only %s", r.when.describe())
			}
			return fmt.Sprintf("when: %s is outside the time window (%s)", f.at.In(r.when.loc).Format("Mon 2006-01-02 15:04 MST"), r.when.describe())
		})
	}
	if r.mfa > 0 {
		pass(mfaCheck(r, f), func() string {
			switch {
			case !f.src.isNode || f.src.tagged:
				return "mfa: only users' devices can satisfy mfa, and the source is not one"
			case !f.mfaKnown:
				return fmt.Sprintf("mfa: no MFA login is known, and the rule needs one at most %s old", fmtDuration(r.mfa))
			}
			return fmt.Sprintf("mfa: MFA %s old > %s", fmtDuration(f.mfaAge), fmtDuration(r.mfa))
		})
	}
	v.ok = len(v.reasons) == 0
	return v
}

func containsProto(ps []int, p int) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}

func selTexts(ss []selector) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = s.text
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func dstTexts(r *rule) string {
	parts := make([]string, len(r.dst))
	for i, d := range r.dst {
		parts[i] = d.sel.text
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// fmtDuration prints a duration without trailing zero units ("12h", not
// "12h0m0s").
func fmtDuration(d time.Duration) string {
	if d%(24*time.Hour) == 0 && d >= 48*time.Hour {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// allows returns the first rule allowing f, and the number of rules
// checked.
func (p *Policy) allows(f *flow) (*rule, int) {
	for i, r := range p.rules {
		if p.matchRule(r, f) {
			return r, i + 1
		}
	}
	return nil, len(p.rules)
}

// score counts the checks r passes and fails on f, without explaining.
func (p *Policy) score(r *rule, f *flow) (passed, failed int) {
	count := func(ok bool) {
		if ok {
			passed++
		} else {
			failed++
		}
	}
	dst, port := dstCheck(r, f)
	count(dst)
	if dst {
		count(port)
	}
	count(protoCheck(r, f))
	count(srcCheck(r, f))
	if len(r.postures) > 0 {
		count(p.postureCheck(r, f))
	}
	if r.when != nil {
		count(whenCheck(r, f))
	}
	if r.mfa > 0 {
		count(mfaCheck(r, f))
	}
	return passed, failed
}

// nearMisses returns up to n rules that came closest to allowing f, best
// first (fewest failed checks, then most passed), with their reasons.
func (p *Policy) nearMisses(f *flow, n int) []Candidate {
	type scored struct {
		r              *rule
		passed, failed int
	}
	better := func(a, b scored) bool {
		if a.failed != b.failed {
			return a.failed < b.failed
		}
		return a.passed > b.passed
	}
	var best []scored
	for _, r := range p.rules {
		passed, failed := p.score(r, f)
		if passed == 0 {
			continue
		}
		s := scored{r, passed, failed}
		i := len(best)
		for i > 0 && better(s, best[i-1]) {
			i--
		}
		if i >= n {
			continue
		}
		best = append(best, scored{})
		copy(best[i+1:], best[i:])
		best[i] = s
		if len(best) > n {
			best = best[:n]
		}
	}
	out := make([]Candidate, len(best))
	for i, b := range best {
		out[i] = Candidate{Rule: p.ruleRef(b.r), Reasons: p.evalRule(b.r, f).reasons}
	}
	return out
}

func (p *Policy) ruleRef(r *rule) RuleRef {
	line, col := p.d.position(r.off)
	return RuleRef{Index: r.index, Line: line, Col: col, Text: r.text, Section: r.section}
}
