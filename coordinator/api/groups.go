package api

import (
	"slices"
	"strings"

	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/policy"
)

// Where a user's membership of a group comes from (GroupMembership.Sources).
const (
	// GroupFromPolicy: the policy file's "groups" lists the user.
	GroupFromPolicy = "policy"
	// GroupFromIdP: the identity provider's groups claim at the user's
	// last sign-in.
	GroupFromIdP = "idp"
	// GroupFromUser: the user record's groups, set by an admin (users
	// create --group) for a user without an identity provider.
	GroupFromUser = "user"
)

// GroupMembership is one group of the policy a user is in, and where each
// membership comes from (GroupFromPolicy, GroupFromIdP, GroupFromUser).
type GroupMembership struct {
	Group   string   `json:"group"`
	Sources []string `json:"sources"`
}

// GroupMemberships returns the groups login is in under p, as rules see
// them: those the policy file lists it in, and those of userGroups (the
// user's own groups, from source) that the file declares. A group the file
// does not declare is left out, since no rule can name it.
func GroupMemberships(p *policy.Policy, login string, userGroups []string, source string) []GroupMembership {
	if p == nil {
		return nil
	}
	listed, declared := p.UserGroups(login, userGroups)
	var out []GroupMembership
	add := func(group, source string) {
		for i := range out {
			if out[i].Group == group {
				out[i].Sources = append(out[i].Sources, source)
				return
			}
		}
		out = append(out, GroupMembership{Group: group, Sources: []string{source}})
	}
	for _, g := range listed {
		add(g, GroupFromPolicy)
	}
	for _, g := range declared {
		add(g, source)
	}
	slices.SortFunc(out, func(a, b GroupMembership) int { return strings.Compare(a.Group, b.Group) })
	return out
}

// userGroupSource is where u's own groups come from.
func userGroupSource(u store.User) string {
	if u.Issuer != "" {
		return GroupFromIdP
	}
	return GroupFromUser
}

// userJSON is u as the API shows it, with its groups under p (nil: the
// policy is not known).
func userJSON(u store.User, p *policy.Policy) User {
	out := User{ID: int64(u.ID), Name: u.Name, Email: u.Email, Groups: u.Groups, Role: string(u.Role),
		Disabled: u.Disabled, Created: u.Created, Issuer: u.Issuer, Subject: u.Subject,
		Password: u.PasswordHash != "", TOTP: u.TOTPSecret != "",
		EffectiveGroups: GroupMemberships(p, u.Name, u.Groups, userGroupSource(u))}
	if !u.MFAAt.IsZero() {
		t := u.MFAAt
		out.LastMFA = &t
	}
	return out
}

// userJSON is u as the API shows it under the policy in force.
func (s *Server) userJSON(u store.User) User {
	return userJSON(u, s.cfg.Policy.Current())
}
