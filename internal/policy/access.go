package policy

import (
	"errors"
	"time"
)

// This file is the policy's "access" section (a Warren extension): who may
// request just-in-time access to what, who approves it, for how long at
// most and under which conditions. A request names one destination written
// like an acls destination ("tag:prod-db:5432"); it is allowed by the first
// access rule whose src selects the requesting device and whose dst covers
// the requested destination (same host, group, tag or prefix selector;
// ports within the rule's). The section never grants anything itself: an
// approved request becomes a Grant in the Graph (graph_access.go).

// AccessRule is one entry of the policy's access section, as written.
type AccessRule struct {
	// Ref is its id in audit events, grants and flow logs: "access[0]".
	Ref string
	// Src and Dst are the rule's selectors as written; Approvers lists
	// users and groups ("group:sre", "bob@example.com").
	Src, Dst, Approvers []string
	// SelfApprove lets the requester approve their own request
	// (break-glass); it requires "approvers": [] and always raises an
	// alert.
	SelfApprove bool
	// MaxDuration bounds a grant's duration.
	MaxDuration time.Duration
	// MFA is how fresh the requester's MFA must be when filing (0: not
	// required).
	MFA time.Duration
	// ReasonRequired: "reason": "required".
	ReasonRequired bool
}

// Errors of the access section's queries.
var (
	// ErrNoAccessRule: no access rule lets this device request that
	// destination.
	ErrNoAccessRule = errors.New("no access rule lets this device request that destination")
	// ErrBadDestination: the destination is not written like an acls
	// destination ("host:ports").
	ErrBadDestination = errors.New("malformed destination")
)

// AccessRules returns the access section's rules in file order.
func (p *Policy) AccessRules() []AccessRule {
	panic("not implemented")
}

// MatchAccess returns the first access rule that lets node n request dst
// ("tag:prod-db:5432"), or an error wrapping ErrNoAccessRule or
// ErrBadDestination.
func (p *Policy) MatchAccess(n Node, dst string) (AccessRule, error) {
	panic("not implemented")
}

// MayApprove reports whether the user login (with identity-provider
// groups idpGroups, as for Node.Groups) is one of the approvers of the
// access rule ref under this policy. It is false for an unknown ref.
func (p *Policy) MayApprove(ref, login string, idpGroups []string) bool {
	panic("not implemented")
}
