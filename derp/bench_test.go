package derp

import (
	"bytes"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/key"
)

// window is how many packets may be in flight: the relay drops rather
// than queue without bound, and so does UDP, so both streams are paced by
// the receiver. It keeps well under the relay queue and a default UDP
// receive buffer.
func window(size int) int { return max(2, min(64, (160<<10)/size)) }

// BenchmarkRelayThroughput streams packets from one client to another
// through a relay on loopback, and the same stream over a plain UDP socket
// pair as the baseline. Metrics: MB/s (relay), direct-MB/s, relay/direct,
// and CPU seconds per Gbit relayed for the whole process — relay, both
// clients and the benchmark itself, since all run in one process
// (process-cpu-s/Gbit; direct-cpu-s/Gbit for the UDP baseline). The relay
// runs without a rate limit. 65000 bytes is the large case because a UDP
// datagram cannot carry 64 KiB.
func BenchmarkRelayThroughput(b *testing.B) {
	for _, size := range []int{1280, 65000} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) { benchThroughput(b, size) })
	}
}

func benchThroughput(b *testing.B, size int) {
	relay := newRelay(b, ServerConfig{RateBytesPerSec: -1})
	ka, kb := key.NewNode(), key.NewNode()
	src, dst := relay.dial(b, ka), relay.dial(b, kb)
	dstKey := kb.Public()
	ctx := testCtx(b)
	pkt := bytes.Repeat([]byte{0xa5}, size)
	credits := make(chan struct{}, window(size))
	recvDone := make(chan error, 1)

	b.SetBytes(int64(size))
	b.ResetTimer()
	cpu0 := processCPU(b)
	go func() {
		for range b.N {
			m, err := dst.Recv(ctx)
			if err != nil {
				recvDone <- err
				return
			}
			if p, ok := m.(Packet); !ok || len(p.Data) != size {
				recvDone <- fmt.Errorf("got %#v", m)
				return
			}
			<-credits
		}
		recvDone <- nil
	}()
	for range b.N {
		credits <- struct{}{}
		if err := src.Send(ctx, dstKey, pkt); err != nil {
			b.Fatalf("Send: %v", err)
		}
	}
	if err := <-recvDone; err != nil {
		b.Fatalf("Recv: %v", err)
	}
	b.StopTimer()
	relayTime, relayCPU := b.Elapsed(), processCPU(b)-cpu0

	if st := relay.Stats(); st.DroppedQueueFull+st.DroppedRateLimited != 0 {
		b.Fatalf("relay dropped packets: %+v", st)
	}
	directTime, directCPU := directUDP(b, pkt, b.N)

	gbit := float64(b.N) * float64(size) * 8 / 1e9
	relayMBs := float64(b.N) * float64(size) / relayTime.Seconds() / 1e6
	directMBs := float64(b.N) * float64(size) / directTime.Seconds() / 1e6
	b.ReportMetric(relayCPU.Seconds()/gbit, "process-cpu-s/Gbit")
	b.ReportMetric(directMBs, "direct-MB/s")
	b.ReportMetric(directCPU.Seconds()/gbit, "direct-cpu-s/Gbit")
	b.ReportMetric(relayMBs/directMBs, "relay/direct")
}

// directUDP sends n copies of pkt over a loopback UDP socket pair with the
// same pacing as the relay stream, and returns the wall and CPU time.
func directUDP(b *testing.B, pkt []byte, n int) (time.Duration, time.Duration) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer rx.Close()
	tx, err := net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Close()
	_ = rx.SetReadBuffer(4 << 20)
	credits := make(chan struct{}, window(len(pkt)))
	recvDone := make(chan error, 1)

	start, cpu0 := time.Now(), processCPU(b)
	go func() {
		buf := make([]byte, 65536)
		for range n {
			// A lost datagram would hang the stream; say so instead.
			_ = rx.SetReadDeadline(time.Now().Add(5 * time.Second))
			m, err := rx.Read(buf)
			if err != nil {
				recvDone <- fmt.Errorf("direct UDP read (lost datagram?): %w", err)
				return
			}
			if m != len(pkt) {
				recvDone <- fmt.Errorf("direct UDP: %d bytes, want %d", m, len(pkt))
				return
			}
			<-credits
		}
		recvDone <- nil
	}()
	for range n {
		credits <- struct{}{}
		if _, err := tx.Write(pkt); err != nil {
			b.Fatalf("direct UDP write: %v", err)
		}
	}
	if err := <-recvDone; err != nil {
		b.Fatal(err)
	}
	return time.Since(start), processCPU(b) - cpu0
}

// BenchmarkIdleClients connects 1,000 clients that stay idle and reports
// what they cost: heap bytes per client (after GC; both ends, since the
// clients run in the same process), goroutines per client on the server
// and in total. ns/op is the time to connect all of them. What the relay
// process as a whole holds (RSS, stacks included), beside Tailscale's
// derper, is BenchmarkIdleClientRSS in internal/tstest/relayrss.
func BenchmarkIdleClients(b *testing.B) {
	const n = 1000
	for range b.N {
		relay := newRelay(b, ServerConfig{})
		heap0, g0 := heapAfterGC(), runtime.NumGoroutine()
		clients := make([]*Client, 0, n)
		for range n {
			c, err := Dial(testCtx(b), relay.url, key.NewNode(), ClientOptions{Logger: quietLogger()})
			if err != nil {
				b.Fatalf("Dial: %v", err)
			}
			clients = append(clients, c)
		}
		for _, c := range clients {
			barrier(b, c) // every server handler is in its read loop
		}
		heap1, g1 := heapAfterGC(), runtime.NumGoroutine()
		server := countGoroutines("derp.(*sclient).writeLoop", "derp.(*sclient).readLoop")
		b.ReportMetric(float64(int64(heap1)-int64(heap0))/n, "heap-B/client")
		b.ReportMetric(float64(g1-g0)/n, "goroutines/client")
		b.ReportMetric(float64(server)/n, "server-goroutines/client")
		if st := relay.Stats(); st.Clients != n {
			b.Fatalf("relay has %d clients, want %d", st.Clients, n)
		}
		for _, c := range clients {
			c.Close()
		}
		relay.Close()
	}
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// countGoroutines counts the goroutines whose stack mentions any of fns.
func countGoroutines(fns ...string) int {
	buf := make([]byte, 64<<20)
	buf = buf[:runtime.Stack(buf, true)]
	count := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		for _, fn := range fns {
			if strings.Contains(g, fn) {
				count++
				break
			}
		}
	}
	return count
}
