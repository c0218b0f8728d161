// Package streambench measures single-stream TCP throughput for benchmarks:
// one side writes fixed chunks, the other discards them and counts, and the
// count is checked so every byte is known to have arrived.
package streambench

import (
	"io"
	"net"
	"testing"
)

// Chunk is the size of one write; b.SetBytes is set to it so `go test
// -bench` reports MB/s.
const Chunk = 64 << 10

// Run accepts one connection on ln, opens the sending side with dial, writes
// b.N chunks through it and fails the benchmark unless the receiver counted
// exactly that many bytes.
func Run(b *testing.B, ln net.Listener, dial func() (net.Conn, error)) {
	b.Helper()
	received := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			received <- 0
			return
		}
		n, _ := io.Copy(io.Discard, c)
		_ = c.Close()
		received <- n
	}()
	c, err := dial()
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, Chunk)
	b.SetBytes(Chunk)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	_ = c.Close()
	if got, want := <-received, int64(b.N)*Chunk; got != want {
		b.Fatalf("received %d bytes, sent %d", got, want)
	}
}
