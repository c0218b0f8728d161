//go:build race

package main

// loadNodes is the size of the in-process load run: small under the race
// detector, which slows every message ten-fold.
const loadNodes = 50
