//go:build !race

package coordinator_test

const underRace = false

// concurrentRegistrations is how many registrations
// TestAttackConcurrentRegistrations starts at once: twice the 1,500 of the
// attack that found them failing, since this machine may be faster than
// the one the attack ran on (here the old store failed at 3,000).
const concurrentRegistrations = 3000
