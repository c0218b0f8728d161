//go:build race

package coordinator_test

// underRace scales the attack tests down: the race detector makes every
// handshake many times slower.
const underRace = true
