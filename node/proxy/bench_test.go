package proxy

import (
	"io"
	"net"
	"strconv"
	"testing"
	"time"
)

// benchChunk is what each benchmark iteration sends.
const benchChunk = 128 << 10

// BenchmarkSOCKSThroughput measures bytes/s from a client through the SOCKS
// proxy to a sink over loopback. Compare with BenchmarkDirectThroughput.
func BenchmarkSOCKSThroughput(b *testing.B) {
	sink := startSink(b)
	_, addr := startProxy(b, Config{}, nil)
	c, rep := socksDial(b, addr, SOCKSRequest{Cmd: socksCmdConnect, Addr: sink.Addr(), Port: sink.Port()})
	if rep.code != socksSucceeded {
		b.Fatalf("reply %#x", rep.code)
	}
	_ = c.SetDeadline(time.Time{})
	benchSend(b, c)
}

// BenchmarkDirectThroughput is the same transfer to the sink without the
// proxy.
func BenchmarkDirectThroughput(b *testing.B) {
	sink := startSink(b)
	c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(sink))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	benchSend(b, c)
}

// benchSend writes benchChunk per iteration to c, half-closes, and checks
// the sink's byte count so every byte is known to have arrived.
func benchSend(b *testing.B, c *net.TCPConn) {
	b.Helper()
	buf := make([]byte, benchChunk)
	b.SetBytes(benchChunk)
	b.ResetTimer()
	var sent int64
	// A b.N loop, not b.Loop, so the timed part includes draining the
	// bytes still in flight.
	for range b.N {
		n, err := c.Write(buf)
		if err != nil {
			b.Fatal(err)
		}
		sent += int64(n)
	}
	if err := c.CloseWrite(); err != nil {
		b.Fatal(err)
	}
	reply, err := io.ReadAll(c)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if got, _ := strconv.ParseInt(string(reply), 10, 64); got != sent {
		b.Fatalf("sink got %s bytes, sent %d", reply, sent)
	}
}
