package netstack

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/warrenmesh/warren/internal/tstest/streambench"
)

// BenchmarkStackThroughput measures TCP throughput between two stacks wired
// back to back in memory, with no WireGuard: the cost of the stacks and of
// this package's glue alone. Compare with BenchmarkTunnelThroughput in
// internal/tstest/testmesh to see what WireGuard and UDP add.
func BenchmarkStackThroughput(b *testing.B) {
	a, z := pair(b)
	ln, err := z.ListenTCP(9000)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	streambench.Run(b, ln, func() (net.Conn, error) {
		return a.DialContext(context.Background(), "tcp", netip.AddrPortFrom(addrB4, 9000))
	})
}
