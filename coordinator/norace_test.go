//go:build !race

package coordinator_test

const underRace = false
