//go:build race

package storecopy

// small is the size of the functional tests under the race detector,
// which slows every row tenfold: a tenth, with every kind of row still
// there.
var small = size{users: 12, nodes: 100, audit: 300, flows: 200}
