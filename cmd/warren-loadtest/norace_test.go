//go:build !race

package main

// loadNodes is the size of the in-process load run.
const loadNodes = 200
