package netmap

import (
	"github.com/warrenmesh/warren/internal/policy"
)

// This file applies just-in-time grants (policy.Grant) to the graph and
// queues what changed to the affected nodes, like a policy change confined
// to them. Expiry needs no call: Run wakes at the graph's NextChange,
// which includes the earliest grant's Until.

// SetGrant puts gr in force (or replaces the grant with its ID) and pushes
// the affected nodes their new filters and peers.
func (e *Engine) SetGrant(gr policy.Grant) error {
	panic("not implemented")
}

// RemoveGrant ends the grant with ID id, if it is in force.
func (e *Engine) RemoveGrant(id string) {
	panic("not implemented")
}

// Grants returns the grants in force, sorted by ID.
func (e *Engine) Grants() []policy.Grant {
	panic("not implemented")
}
