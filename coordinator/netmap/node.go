// Package netmap computes each node's network map (self, peers, packet
// filter) from the coordinator's in-memory view of all nodes and the
// compiled policy (internal/policy.Graph), and fans changes out to
// connected nodes as deltas.
//
// The cost of a change is proportional to the number of nodes it affects
// (the changed node's peers, and the nodes whose filters it changes), never
// to the square of the mesh size: a delta is built once, shared by every
// stream it goes to, and queued without copying. A slow stream never blocks
// the engine: past a bound its queue is dropped and it gets a fresh full map
// instead. Each node is also told its own posture (wire.PostureStatus): the
// attributes held for it and the rules it fails only because of posture,
// in full maps and in a delta whenever that changes (posture.go), and each
// node some ssh rule targets its compiled SSH policy, likewise (ssh.go).
// This
// package holds no secrets and does no I/O; persistence is the caller's
// job.
package netmap

import (
	"maps"
	"slices"
	"time"

	"github.com/warrenmesh/warren/internal/policy"
	"github.com/warrenmesh/warren/internal/wire"
)

// Node is the engine's view of one node: its netmap record plus what the
// policy and the engine need to decide who sees it.
type Node struct {
	// Wire is the record peers receive. Its ID, Tags and User (the owner's
	// login, empty for tagged nodes) are what the policy matches.
	Wire wire.Node
	// UserID is the owning user (for tagged nodes: the user who registered
	// it; policies treat tagged nodes as owned by their tags).
	UserID int64
	// Groups are the owner's groups from the identity provider (empty for
	// tagged nodes).
	Groups []string
	// Admin is true when the owner has the admin role (untagged nodes).
	Admin bool
	// Attrs are the node's posture attributes that count ("node:os" →
	// "macos"): what the policy reads. The store leaves out stale and
	// expired ones.
	Attrs map[string]string
	// PostureAttrs are every attribute the coordinator holds for the node,
	// with source, times and staleness, as the node itself is told them
	// (wire.PostureStatus.Attrs); peers never see them.
	PostureAttrs []wire.PostureAttr
	// MFAAt is the owner's last login with a second factor.
	MFAAt time.Time
	// Authorized is false while a node waits for admin approval.
	Authorized bool
	// Disabled is true when the owning user is disabled.
	Disabled bool
}

// ID returns the node's ID.
func (n *Node) ID() wire.NodeID { return n.Wire.ID }

// Tagged reports whether the node is owned by tags.
func (n *Node) Tagged() bool { return len(n.Wire.Tags) > 0 }

// Active reports whether the node may have peers at now: authorized, owner
// not disabled, key not expired.
func (n *Node) Active(now time.Time) bool {
	return n.Authorized && !n.Disabled && !n.expired(now)
}

func (n *Node) expired(now time.Time) bool {
	return !n.Wire.KeyExpiry.IsZero() && !now.Before(n.Wire.KeyExpiry)
}

// policyNode is n as the policy sees it.
func (n *Node) policyNode() policy.Node {
	return policy.Node{
		ID:        n.ID(),
		Addresses: n.Wire.Addresses,
		User:      n.Wire.User,
		Groups:    n.Groups,
		Admin:     n.Admin,
		Tags:      n.Wire.Tags,
		Attrs:     n.Attrs,
		MFAAt:     n.MFAAt,
		Routes:    n.Wire.Routes,
	}
}

// samePolicyView reports whether a and b (two versions of one node) look the
// same to the policy: same owner, tags, groups, role, posture, MFA time,
// addresses and routes.
func samePolicyView(a, b *Node) bool {
	return a.UserID == b.UserID && a.Wire.User == b.Wire.User && a.Admin == b.Admin &&
		slices.Equal(a.Wire.Tags, b.Wire.Tags) && slices.Equal(a.Groups, b.Groups) &&
		slices.Equal(a.Wire.Addresses, b.Wire.Addresses) && maps.Equal(a.Attrs, b.Attrs) &&
		a.MFAAt.Equal(b.MFAAt) && slices.Equal(a.Wire.Routes, b.Wire.Routes)
}
