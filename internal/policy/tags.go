package policy

import (
	"fmt"
	"strings"

	"github.com/tailscale/hujson"
)

// Owner is a principal asking to apply a tag to a node: a user (Login,
// with the user's identity-provider Groups and admin role), or a tagged
// node re-tagging itself (Tags non-empty; Login and Groups are then
// ignored, as for every tagged node).
type Owner struct {
	Login  string
	Groups []string
	Admin  bool
	Tags   []string
}

type ownerKind uint8

const (
	ownerUser ownerKind = iota
	ownerGroup
	ownerAdmin
	ownerMember
	ownerTag
)

type owner struct {
	kind ownerKind
	name string // login (lowercased), "group:x" or "tag:x"
}

// owner parses one entry of a tagOwners list.
func (ps *parser) owner(s string, v hujson.Value) (owner, bool) {
	switch {
	case s == "autogroup:admin":
		return owner{kind: ownerAdmin}, true
	case s == "autogroup:member":
		return owner{kind: ownerMember}, true
	case strings.HasPrefix(s, "autogroup:"):
		hint := "tag owners may be autogroup:admin or autogroup:member"
		if a := nearAutogroup(s, roleSrc); a == "autogroup:admin" || a == "autogroup:member" {
			hint = fmt.Sprintf("did you mean %q?", a)
		}
		ps.errorf(v.StartOffset, hint, "%s cannot own tags", s)
	case strings.HasPrefix(s, "group:"):
		if _, ok := ps.p.groups[s]; !ok {
			ps.errorf(v.StartOffset, ps.groupHint(s), "unknown group %q", s)
			return owner{}, false
		}
		return owner{kind: ownerGroup, name: s}, true
	case strings.HasPrefix(s, "tag:"):
		if _, ok := ps.p.tags[s]; !ok {
			ps.errorf(v.StartOffset, ps.suggest(s, "tags", fmt.Sprintf("give %s its own tagOwners entry", s)), "tag %q has no tagOwners entry", s)
			return owner{}, false
		}
		return owner{kind: ownerTag, name: s}, true
	case validLogin(s):
		return owner{kind: ownerUser, name: strings.ToLower(s)}, true
	default:
		ps.errorf(v.StartOffset, "owners are user logins, group:..., tag:... or autogroup:admin", "invalid tag owner %q", s)
	}
	return owner{}, false
}

// TagDefined reports whether tag has an entry in tagOwners: only such
// tags may be applied to a node, by anyone (admins included).
func (p *Policy) TagDefined(tag string) bool {
	_, ok := p.tags[tag]
	return ok
}

// MayTag reports whether o may apply tag to a node, by the tag's
// tagOwners entry. Unknown tags may be applied by nobody; admins may apply
// a tag only when autogroup:admin (or another entry matching them) owns
// it.

func (p *Policy) MayTag(o Owner, tag string) bool {
	t, ok := p.tags[tag]
	if !ok {
		return false
	}
	tagged := len(o.Tags) > 0
	login := strings.ToLower(o.Login)
	for _, ow := range t.owners {
		switch ow.kind {
		case ownerTag:
			if tagged && contains(o.Tags, ow.name) {
				return true
			}
		case ownerUser:
			if !tagged && login != "" && login == ow.name {
				return true
			}
		case ownerAdmin:
			if !tagged && o.Admin {
				return true
			}
		case ownerMember:
			if !tagged && login != "" {
				return true
			}
		case ownerGroup:
			if !tagged && login != "" && p.inGroup(login, o.Groups, ow.name) {
				return true
			}
		}
	}
	return false
}

// inGroup reports whether a user is in group (a "group:x" name): listed in
// the policy, or given the group by the identity provider as "x" or
// "group:x".
func (p *Policy) inGroup(login string, idpGroups []string, group string) bool {
	if contains(p.userGrp[login], group) {
		return true
	}
	short := strings.TrimPrefix(group, "group:")
	for _, g := range idpGroups {
		if g == short || g == group {
			return true
		}
	}
	return false
}

// effectiveGroups returns the policy's groups a user belongs to, from the
// file and from the identity provider, without duplicates.
func (p *Policy) effectiveGroups(login string, idpGroups []string) []string {
	out := append([]string(nil), p.userGrp[login]...)
	for _, g := range idpGroups {
		name := g
		if !strings.HasPrefix(name, "group:") {
			name = "group:" + g
		}
		if _, ok := p.groups[name]; ok && !contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}
