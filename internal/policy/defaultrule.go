package policy

import "github.com/tailscale/hujson"

// A policy file with neither an "acls" nor a "grants" section means, in
// Tailscale, that every device may reach every other on every port: the
// sections left out are filled in with Tailscale's default "allow all"
// policy. This is by design (tailscale/tailscale#2799, where the
// maintainers confirm it), and Headscale follows it too. An empty
// section, "acls": [] or "grants": [], denies everything. Warren gives
// files the same meaning, so that a Tailscale file means the same here,
// and warns loudly: the default rule is the one Tailscale's default
// policy file holds, {"src": ["*"], "dst": ["*:*"]}, which Warren compiles
// like any other (sources: the mesh's ranges).

// defaultRuleText describes the default rule in messages.
const defaultRuleText = `{"action": "accept", "src": ["*"], "dst": ["*:*"]} (the default of a policy with neither acls nor grants)`

// defaultAllow adds the default rule of a policy without acls or grants.
func (ps *parser) defaultAllow(root hujson.Value) {
	ps.warnf(root.StartOffset, `add "acls": [] (or "grants": []) to deny every connection, or write the rules you mean`,
		"the policy has neither acls nor grants: as in Tailscale, every node may reach every other on every port")
	all := selector{kind: selAll, text: "*"}
	r := &rule{
		section: "default",
		off:     root.StartOffset,
		text:    defaultRuleText,
		src:     []selector{all},
		dst:     []dstEntry{{sel: all, ports: allPorts, off: root.StartOffset, text: "*:*"}},
	}
	r.finish(ps)
	ps.p.rules = append(ps.p.rules, r)
}
