//go:build race

package storecopy

// small is the size of the functional tests under the race detector,
// which slows every row tenfold: a tenth, with every kind of row still
// there.
var small = size{users: 8, nodes: 50, audit: 150, flows: 100}
