package netmap

import (
	"github.com/warrenmesh/warren/internal/policy"
)

// This file applies just-in-time grants (policy.Grant) to the graph and
// queues what changed to the affected nodes, like a policy change confined
// to them: the granted node and the nodes its destination selects get a
// full map (their peers and filters changed), nobody else hears anything.
// Expiry needs no call: Run wakes at the graph's NextChange, which
// includes the earliest grant's Until, and due pushes the same way.

// SetGrant puts gr in force (or replaces the grant with its ID) and pushes
// the affected nodes their new filters and peers. It fails, changing
// nothing, when gr.Dst does not parse under the engine's policy; a grant
// whose Until has passed is not put in force.
func (e *Engine) SetGrant(gr policy.Grant) error {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fullTo(e.graph.Advance(now))
	aff, err := e.graph.SetGrant(gr)
	if err != nil {
		return err
	}
	e.fullTo(aff)
	e.postureTo(e.graph.PostureChanged(), 0)
	e.poke() // Run's next deadline may now be this grant's Until
	return nil
}

// RemoveGrant ends the grant with ID id, if it is in force.
func (e *Engine) RemoveGrant(id string) {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fullTo(e.graph.Advance(now))
	e.fullTo(e.graph.RemoveGrant(id))
	e.postureTo(e.graph.PostureChanged(), 0)
}

// Grants returns the grants in force, sorted by ID.
func (e *Engine) Grants() []policy.Grant {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	gs := e.graph.Grants()
	out := gs[:0]
	for _, g := range gs {
		if g.Until.After(now) { // Run may not have withdrawn it yet
			out = append(out, g)
		}
	}
	return out
}
