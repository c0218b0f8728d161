//go:build !windows

package main

// defaultStateDir is where warrend keeps its state unless --state-dir
// says otherwise.
const defaultStateDir = "/var/lib/warren"
