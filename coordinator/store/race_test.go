//go:build race

package store

// concurrentWriters is how many goroutines TestConcurrentWriteTransactions
// starts: fewer under the race detector, which slows every write tenfold.
const concurrentWriters = 300
