package netstack

import (
	"context"
	"io"
	"net/netip"
	"testing"
)

// BenchmarkStackThroughput measures TCP throughput between two stacks wired
// back to back in memory, with no WireGuard: the cost of the stacks and of
// this package's glue alone. Compare with BenchmarkTunnelThroughput in
// internal/testmesh to see what WireGuard and UDP add.
func BenchmarkStackThroughput(b *testing.B) {
	const chunk = 64 << 10
	a, z := pair(b)
	ln, err := z.ListenTCP(9000)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- 0
			return
		}
		n, _ := io.Copy(io.Discard, c)
		c.Close()
		done <- n
	}()
	c, err := a.DialContext(context.Background(), "tcp", netip.AddrPortFrom(addrB4, 9000))
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, chunk)
	b.SetBytes(chunk)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	c.Close()
	if got := <-done; got != int64(b.N)*chunk {
		b.Fatalf("received %d bytes, sent %d", got, int64(b.N)*chunk)
	}
}
