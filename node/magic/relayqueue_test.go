package magic

import (
	"bytes"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/key"
)

// newQueueOnlyRelayConn returns a relayConn whose queues are filled and
// drained by the test, as if its relay connection were congested.
func newQueueOnlyRelayConn() *relayConn {
	set := &relaySet{c: &Conn{start: time.Now()}}
	return &relayConn{set: set, out: make(chan outPacket, relayQueue), disco: make(chan outPacket, relayDiscoQueue)}
}

func drainOut(rc *relayConn) [][]byte {
	var got [][]byte
	for {
		p, ok := rc.nextOut()
		if !ok {
			return got
		}
		got = append(got, p.data)
	}
}

func discoMsg(i int) []byte { return []byte{'w', 'r', 'n', byte(i >> 8), byte(i)} }

// TestRelayDiscoSurvivesDataFlood: a data flood overflows the relay send
// queue, yet a disco message queued in the middle of it is kept and goes
// out first.
func TestRelayDiscoSurvivesDataFlood(t *testing.T) {
	rc := newQueueOnlyRelayConn()
	dst := key.NewNode().Public()
	for i := range relayQueue + 10 {
		rc.enqueue(dst, wgPacket(4, 64, byte(i)))
	}
	rc.enqueueDisco(dst, discoMsg(1))
	for i := range 10 {
		rc.enqueue(dst, wgPacket(4, 64, byte(i)))
	}
	got := drainOut(rc)
	if len(got) != relayQueue+1 {
		t.Fatalf("%d packets queued, want %d data + 1 disco", len(got), relayQueue)
	}
	if !bytes.Equal(got[0], discoMsg(1)) {
		t.Fatalf("first packet = %x, want the disco message", got[0][:min(8, len(got[0]))])
	}
}

// TestRelayDiscoFloodDropsOldest: a disco flood keeps the newest
// relayDiscoQueue messages, oldest first, and leaves queued data alone.
func TestRelayDiscoFloodDropsOldest(t *testing.T) {
	rc := newQueueOnlyRelayConn()
	dst := key.NewNode().Public()
	data := wgPacket(4, 64, 7)
	rc.enqueue(dst, data)
	const n = 3 * relayDiscoQueue
	for i := range n {
		rc.enqueueDisco(dst, discoMsg(i))
	}
	got := drainOut(rc)
	if len(got) != relayDiscoQueue+1 {
		t.Fatalf("%d packets queued, want %d disco + 1 data", len(got), relayDiscoQueue)
	}
	for i := range relayDiscoQueue {
		if want := discoMsg(n - relayDiscoQueue + i); !bytes.Equal(got[i], want) {
			t.Errorf("disco #%d = %x, want %x", i, got[i], want)
		}
	}
	if !bytes.Equal(got[relayDiscoQueue], data) {
		t.Errorf("last packet is not the data packet")
	}
}
