//go:build race

package coordinator_test

// underRace scales the attack tests down: the race detector makes every
// handshake many times slower.
const underRace = true

// concurrentRegistrations is how many registrations
// TestAttackConcurrentRegistrations starts at once. Under the race
// detector every Noise handshake is so slow that a few hundred at once on
// two cores overrun the control server's handshake bound (a timeout, not
// the store failing), so the race run checks the store's side with fewer.
const concurrentRegistrations = 100
