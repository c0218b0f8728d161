package policy

import (
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// This file holds just-in-time grants in the graph: each lets one node
// (the requesting device, never its user's other devices) reach one
// destination until a deadline. A grant adds a filter rule (Rule: its
// Ref) to the nodes its destination selects and makes them peers of the
// granted node while it is in force; Advance withdraws it at Until like a
// closing time window, and NextChange includes the earliest Until.
// Grants survive SetPolicy; one whose destination no longer parses under
// the new policy stops counting (the caller ends it: see
// coordinator/access).

// Grant is an approved just-in-time access request in force.
type Grant struct {
	ID   string      // the request's id ("ar-12")
	Node wire.NodeID // the requesting device
	// Dst is the granted destination, written like an acls destination
	// ("tag:prod-db:5432").
	Dst string
	// Rule is the access rule it was granted under ("access[0]"); the
	// filter rule it adds is named Rule + "/" + ID ("access[0]/ar-12").
	Rule  string
	Until time.Time
}

// SetGrant adds gr or replaces the grant with its ID, returning the nodes
// whose peers or filter changed. It fails (changing nothing) if gr.Dst
// does not parse under the graph's policy. A grant whose Until is not
// after the graph's clock is not added.
func (g *Graph) SetGrant(gr Grant) (affected []wire.NodeID, err error) {
	panic("not implemented")
}

// RemoveGrant removes the grant with ID id (if any), returning the nodes
// whose peers or filter changed.
func (g *Graph) RemoveGrant(id string) (affected []wire.NodeID) {
	panic("not implemented")
}

// Grants returns the grants in force, sorted by ID.
func (g *Graph) Grants() []Grant {
	panic("not implemented")
}

// MFADenials lists the rules node id fails only because its user's MFA
// is older than the rule's "mfa" (or missing): its sources select the
// node, the rule applies now, and it passes every other condition. Its
// cost is proportional to the node's rules, never to the mesh.
func (g *Graph) MFADenials(id wire.NodeID) []wire.MFADenial {
	panic("not implemented")
}
