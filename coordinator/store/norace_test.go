//go:build !race

package store

// concurrentWriters is how many goroutines TestConcurrentWriteTransactions
// starts: twice the 1,500 simultaneous registrations that once failed, as
// this machine may be faster than the attack's (the old store failed at
// 3,000 here; 10,000 pass in about ten seconds).
const concurrentWriters = 3000
