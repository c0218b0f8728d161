package policy

import "strings"

// UserGroups says which of the policy's groups a user is in and why:
// listed holds the groups whose members the policy file lists login in,
// declared the user's own groups (idpGroups, from the identity provider
// or the user record, "eng" or "group:eng") that the file declares, as
// "group:" names. A group of idpGroups the file does not declare is in
// neither: no rule can name it. This is the membership rules see
// (effectiveGroups), split by source for people to read.
func (p *Policy) UserGroups(login string, idpGroups []string) (listed, declared []string) {
	listed = append([]string(nil), p.userGrp[strings.ToLower(login)]...)
	for _, g := range idpGroups {
		name := g
		if !strings.HasPrefix(name, "group:") {
			name = "group:" + g
		}
		if _, ok := p.groups[name]; ok && !contains(declared, name) {
			declared = append(declared, name)
		}
	}
	return listed, declared
}
