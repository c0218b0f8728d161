// Package hatest holds the high-availability test: a throwaway PostgreSQL
// database, two warren-coordinator serve processes (replicas sharing it
// and one key file) behind a real load balancer (HAProxy, package lb),
// and nodes with real userspace WireGuard data planes on each replica. It
// kills a replica with SIGKILL and checks that its nodes move to the other
// while a TCP stream between two nodes keeps flowing.
//
// It has no code outside its tests and must never be imported. It skips,
// saying so, where PostgreSQL or HAProxy is not installed, and its tests
// build on Linux only (they freeze a replica with SIGSTOP).
package hatest
