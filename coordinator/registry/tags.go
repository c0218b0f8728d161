package registry

import (
	"context"
	"errors"
	"fmt"

	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/policy"
)

// ErrTagNotOwned is returned when whoever would apply a tag may not (any
// more): the tag is not defined in tagOwners, or its creator was disabled,
// deleted or no longer owns it.
var ErrTagNotOwned = errors.New("tag not owned")

// policyNow returns the policy in force, or nil.
func (r *Registry) policyNow() *policy.Policy {
	if r.policy == nil {
		return nil
	}
	return r.policy()
}

// tagsDefined checks that every tag has an entry in the policy's
// tagOwners: no one, admins included, applies a tag the policy does not
// define.
func (r *Registry) tagsDefined(tags []string) error {
	if len(tags) == 0 {
		return nil
	}
	p := r.policyNow()
	for _, t := range tags {
		if p == nil || !p.TagDefined(t) {
			return fmt.Errorf("%w: %s is not defined in the policy's tagOwners (add it there first)", ErrTagNotOwned, t)
		}
	}
	return nil
}

// mayApplyTags checks, as things are now, that the user creator (named
// name in messages) may apply every tag: each is defined in tagOwners,
// and the creator is the coordinator host's administrator (ID 0), or an
// enabled admin, or an enabled user tagOwners lets apply it.
func (r *Registry) mayApplyTags(ctx context.Context, q store.Queries, creator store.UserID, name string, tags []string) error {
	if err := r.tagsDefined(tags); err != nil {
		return err
	}
	if creator == 0 {
		return nil
	}
	u, err := q.GetUser(ctx, creator)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %s no longer exists", ErrTagNotOwned, name)
	} else if err != nil {
		return err
	}
	if u.Disabled {
		return fmt.Errorf("%w: %s is disabled", ErrTagNotOwned, u.Name)
	}
	if u.Role == store.RoleAdmin {
		return nil
	}
	p := r.policyNow()
	o := policy.Owner{Login: u.Name, Groups: u.Groups}
	for _, t := range tags {
		if p == nil || !p.MayTag(o, t) {
			return fmt.Errorf("%w: %s does not own %s (see tagOwners in the policy)", ErrTagNotOwned, u.Name, t)
		}
	}
	return nil
}

// checkKeyRights checks, when pre-auth key k is used, that it may still
// do what it was made for: its owner exists and is enabled, and its
// creator may still apply its tags (see mayApplyTags). A key created
// before creators were recorded is checked against its tags only.
func (r *Registry) checkKeyRights(ctx context.Context, q store.Queries, k store.AuthKey) error {
	owner, err := q.GetUser(ctx, k.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: the key's user no longer exists", ErrTagNotOwned)
	} else if err != nil {
		return err
	}
	if owner.Disabled {
		return fmt.Errorf("%w: the key's user %s is disabled", ErrTagNotOwned, owner.Name)
	}
	if len(k.Tags) == 0 {
		return nil
	}
	if k.CreatorID == store.CreatorUnknown {
		return r.tagsDefined(k.Tags)
	}
	return r.mayApplyTags(ctx, q, k.CreatorID, fmt.Sprintf("the key's creator (user %d)", k.CreatorID), k.Tags)
}
