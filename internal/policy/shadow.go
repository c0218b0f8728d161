package policy

import "fmt"

// maxShadowWork caps the selector comparisons spent looking for shadowed
// rules; past it the analysis stops (it only produces warnings).
const maxShadowWork = 10_000_000

// findShadowed warns about rules that allow nothing another rule does not
// already allow. The check is syntactic and conservative: it can miss
// overlaps, but every warning is true. It stops after maxWork selector
// comparisons.
func (p *Policy) findShadowed(maxWork int) {
	ports := make([]int, len(p.rules))
	for i, r := range p.rules {
		for _, d := range r.dst {
			ports[i] += len(d.ports)
		}
	}
	work := 0
	for bi, b := range p.rules {
		for ai, a := range p.rules {
			if ai == bi || (a.section == b.section && a.index == b.index) {
				continue // the rules of one grant are one rule
			}
			// An upper bound on what covers(a, b) may cost.
			work += 1 + len(a.src)*len(b.src) + len(a.dst)*len(b.dst) + len(b.dst)*ports[ai] + ports[bi]
			if work > maxWork {
				p.d.warnf(0, "split the policy into fewer, broader rules", "shadowed-rule analysis stopped early: the policy is very large")
				return
			}
			if !p.covers(a, b) {
				continue
			}
			// Two equivalent rules: warn about the later one only.
			if ai > bi && p.covers(b, a) {
				continue
			}
			ref := p.ruleRef(a)
			p.d.warnf(b.off, fmt.Sprintf("remove it, or narrow %s if that one is broader than intended", ref),
				"%s allows nothing that %s does not already allow", b.label(), ref)
			break
		}
	}
}

// covers reports whether every flow rule b allows, rule a allows too, under
// every condition b needs.
func (p *Policy) covers(a, b *rule) bool {
	// a's conditions must be no stricter than b's.
	if a.when != nil && (b.when == nil || !a.when.equal(b.when)) {
		return false
	}
	if a.mfa > 0 && (b.mfa == 0 || b.mfa > a.mfa) {
		return false
	}
	if len(a.postures) > 0 {
		if len(b.postures) == 0 {
			return false
		}
		for _, x := range b.postures {
			if !containsInt(a.postures, x) {
				return false
			}
		}
	}
	// Conditional rules read literal sources as nodes; keep it simple and
	// compare only rules that read them the same way.
	if a.conditional != b.conditional {
		return false
	}
	// Protocols.
	bp, ap := b.protos, a.protos
	if bp == nil {
		bp = defaultProtos
	}
	if ap == nil {
		ap = defaultProtos
	}
	for _, x := range bp {
		if !containsProto(ap, x) {
			return false
		}
	}
	// Sources.
	for i := range b.src {
		if !p.anyCovers(a.src, &b.src[i]) {
			return false
		}
	}
	// Destinations and their ports.
	for i := range b.dst {
		bd := &b.dst[i]
		var union []portRange
		for j := range a.dst {
			ad := &a.dst[j]
			// As a destination, "*" is every node and every address.
			if ad.sel.kind == selAll || p.selCovers(&ad.sel, &bd.sel) {
				union = append(union, ad.ports...)
			}
		}
		if !portsCover(mergeRanges(union), bd.ports) {
			return false
		}
	}
	return true
}

func (p *Policy) anyCovers(as []selector, b *selector) bool {
	for i := range as {
		if p.selCovers(&as[i], b) {
			return true
		}
	}
	return false
}

// selCovers reports whether selector a selects everything b does.
func (p *Policy) selCovers(a, b *selector) bool {
	if b.kind == selNone {
		return true // b selects nothing
	}
	switch a.kind {
	case selDangerAll:
		return true
	case selAll:
		return b.kind != selDangerAll && (b.kind != selPrefix || inMesh(b.prefix))
	case selMember:
		return b.kind == selMember || b.kind == selUser || b.kind == selUserDomain || b.kind == selGroup || b.kind == selAdmin || b.kind == selSelf
	case selUserDomain:
		if b.kind == selUser {
			return loginDomain(b.name) == a.name
		}
		return b.kind == selUserDomain && a.name == b.name
	case selTagged:
		return b.kind == selTagged || b.kind == selTag
	case selGroup:
		if b.kind == selUser {
			return contains(p.groups[a.name].members, b.name)
		}
		return b.kind == selGroup && a.name == b.name
	case selPrefix:
		return b.kind == selPrefix && a.prefix.Bits() <= b.prefix.Bits() && a.prefix.Contains(b.prefix.Addr())
	}
	return a.kind == b.kind && a.name == b.name
}

// portsCover reports whether the sorted, merged ranges a include every
// port of the sorted ranges b.
func portsCover(a, b []portRange) bool {
	i := 0
	for _, r := range b {
		for i < len(a) && a[i].last < r.first {
			i++
		}
		if i == len(a) || a[i].first > r.first || a[i].last < r.last {
			return false
		}
	}
	return true
}
