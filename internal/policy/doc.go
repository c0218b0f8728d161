// Package policy parses, validates, tests and compiles Warren's access
// policy: one HuJSON file (JSON with comments and trailing commas) in a
// dialect compatible with Tailscale's ACL policy files — groups, hosts,
// tagOwners, acls, tests, autogroup selectors, postures and srcPosture —
// plus Warren's zero-trust extensions: time windows ("when") and MFA
// freshness ("mfa") on rules, extra context fields in tests, and the
// "access" section of just-in-time access (who may request what, who
// approves, for how long; access.go), whose approved requests become
// time-bounded grants in a Graph (graph_access.go).
// Tailscale's ssh rules are validated with Tailscale's rules, tested by
// sshTests and compiled per destination node into a wire.SSHPolicy
// (sshcompile.go) that the node's SSH server enforces; they never change
// this package's packet filters (port 22 is governed by acls and grants).
// nodeAttrs and tailnet-wide options are validated and stored, and Parse
// warns about those Warren does not act on. Nodes' approved subnet routes and exit routes
// (Node.Routes) are compiled as Tailscale compiles them (routes.go), and
// AutoApproves answers Tailscale's autoApprovers for the coordinator.
//
// Parse turns the file into an immutable *Policy. Every problem it finds
// carries a line, a column and a hint; Parse reports all of them at once,
// and a policy whose own tests fail is rejected like one with a syntax
// error. Warnings (rules another rule already covers) do not reject.
//
// A Graph is a Policy compiled against the current set of nodes. It keeps
// per-rule source and destination sets as bitsets over node slots and
// indexes rules by the users, groups and tags they name, so adding,
// changing or removing one node costs work proportional to the rules that
// concern it and the nodes it affects, never to the whole mesh. Graph
// answers, for each node, its peers (nodes it may reach or that may reach
// it) and its inbound packet filter (wire.FilterRule), and reports which
// other nodes must be told after each change. For telling users why,
// Graph.Denials lists the rules a node fails only because of its posture,
// each with the failing condition in plain words, and PostureChanged
// names the nodes whose list may have changed. Time windows and MFA
// freshness make the result depend on the clock; the owner of a Graph
// calls Advance when NextChange says something will change.
//
// Semantics in one paragraph: deny by default; a rule accepts traffic
// from its sources to its destinations' ports; the destination node
// enforces its filter; replies of accepted connections are allowed by the
// node's stateful filter, so rules are written in the direction
// connections are opened. ops/policy/README.md is the admin-facing
// reference.
//
// This package is pure: it does no I/O (time zones come from the embedded
// tzdata when the system has none), starts no goroutines and keeps no
// global mutable state. It must never panic on any input, and its work is
// bounded on hostile input (file size, nesting depth, port lists, tests).
// A Policy is safe for concurrent use; a Graph is not: its owner serializes
// every call, reads included (Filter and Peers fill caches).
package policy
