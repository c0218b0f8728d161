package policy

import (
	"slices"
	"strings"
)

// NodeGroups returns the policy's groups n's owner is in ("group:eng"), as
// rules see them (listed in the file or declared groups from the identity
// provider), sorted; nil for a tagged node. It is what whois and identity
// headers show.
func (p *Policy) NodeGroups(n *Node) []string {
	if len(n.Tags) > 0 || n.User == "" {
		return nil
	}
	g := p.effectiveGroups(strings.ToLower(n.User), n.Groups)
	if len(g) == 0 {
		return nil
	}
	slices.Sort(g)
	return g
}

// NodePostures returns the names of the policy's postures n passes now
// ("posture:managed"), sorted; nil when it passes none.
func (p *Policy) NodePostures(n *Node) []string {
	var out []string
	for _, po := range p.postures {
		if ok, _ := po.check(n.Attrs); ok {
			out = append(out, po.name)
		}
	}
	slices.Sort(out)
	return out
}
