//go:build !race

package storecopy

// small is the size of the functional tests: 1,000 nodes as the issue
// asks.
var small = size{users: 40, nodes: 1000, audit: 3000, flows: 2000}
