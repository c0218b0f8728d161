//go:build !race

package store

// concurrentWriters is how many goroutines TestConcurrentWriteTransactions
// starts: as many as the simultaneous registrations that once failed.
const concurrentWriters = 3000
