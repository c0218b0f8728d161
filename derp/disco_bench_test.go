package derp

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/key"
)

// BenchmarkRelayDiscoFlood streams 1280-byte data packets from one client
// to another through the relay as fast as the sender can write (so the
// destination's queue overflows, as on a congested relay), with a disco
// ping from the same sender after every 64 data packets; with flood=disco
// a third client also floods the destination with disco messages. Each
// case runs with the old single queue (disco shares the tail-drop data
// queue) and with the separate disco queue, in the same run. Metrics:
// data-MB/s (data delivered to the receiver), data-delivered-% and
// pings-delivered-% (the sender's sparse disco pings that arrived: the
// messages that would move traffic off the relay).
func BenchmarkRelayDiscoFlood(b *testing.B) {
	for _, flood := range []bool{false, true} {
		for _, single := range []bool{true, false} {
			name := map[bool]string{false: "flood=none", true: "flood=disco"}[flood] +
				map[bool]string{true: "/queue=single", false: "/queue=separate"}[single]
			b.Run(name, func(b *testing.B) { benchDiscoFlood(b, single, flood) })
		}
	}
}

func benchDiscoFlood(b *testing.B, single, flood bool) {
	const size = 1280
	relay := newRelay(b, ServerConfig{RateBytesPerSec: -1})
	relay.singleQueue = single
	ka, kb, kc := key.NewNode(), key.NewNode(), key.NewNode()
	src, dst, flooder := relay.dial(b, ka), relay.dial(b, kb), relay.dial(b, kc)
	dstKey := kb.Public()
	ctx, cancel := context.WithCancel(testCtx(b))
	defer cancel()
	data := bytes.Repeat([]byte{0xa5}, size)
	disco := append([]byte(discoMagic), bytes.Repeat([]byte{0x5a}, 100)...)
	ping := append([]byte(discoMagic), bytes.Repeat([]byte{0x01}, 100)...)
	const pingEvery = 64

	var gotData, gotDisco, gotPings atomic.Int64
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		for {
			m, err := dst.Recv(ctx)
			if err != nil {
				return
			}
			if p, ok := m.(Packet); ok {
				if looksDisco(p.Data) {
					gotDisco.Add(1)
					if p.Data[len(discoMagic)] == 0x01 {
						gotPings.Add(1)
					}
				} else {
					gotData.Add(1)
				}
			}
		}
	}()
	var stop atomic.Bool
	var sentDisco atomic.Int64
	floodDone := make(chan struct{})
	go func() {
		defer close(floodDone)
		for i := 0; flood && i < 4*b.N+1000 && !stop.Load(); i++ { // bounded in count
			if flooder.Send(ctx, dstKey, disco) != nil {
				return
			}
			sentDisco.Add(1)
		}
	}()

	b.ResetTimer()
	pings := 0
	for i := range b.N {
		if err := src.Send(ctx, dstKey, data); err != nil {
			b.Fatalf("Send: %v", err)
		}
		if i%pingEvery == pingEvery-1 {
			if err := src.Send(ctx, dstKey, ping); err != nil {
				b.Fatalf("Send: %v", err)
			}
			pings++
		}
	}
	stop.Store(true)
	<-floodDone
	barrier(b, src)
	barrier(b, flooder)
	// Wait (bounded) until every frame the relay accepted was written or
	// dropped, and the receiver read every written one.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := relay.Stats()
		accepted := uint64(b.N+pings) + uint64(sentDisco.Load())
		if st.FramesForwarded+st.DroppedQueueFull+st.DroppedDiscoOldest == accepted &&
			uint64(gotData.Load()+gotDisco.Load()) == st.FramesForwarded {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("relay did not settle: %+v, received %d+%d", st, gotData.Load(), gotDisco.Load())
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	elapsed := b.Elapsed()
	cancel()
	<-recvDone
	b.ReportMetric(float64(gotData.Load())*size/elapsed.Seconds()/1e6, "data-MB/s")
	b.ReportMetric(100*float64(gotData.Load())/float64(b.N), "data-delivered-%")
	if pings > 0 {
		b.ReportMetric(100*float64(gotPings.Load())/float64(pings), "pings-delivered-%")
	}
}
