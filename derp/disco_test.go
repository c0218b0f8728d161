package derp

import (
	"bytes"
	"testing"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/node/disco"
)

// TestLooksDisco checks the relay's classification against node/disco's
// wire format: every sealed disco message is disco, WireGuard messages and
// short or foreign packets are not.
func TestLooksDisco(t *testing.T) {
	a, b := key.NewDisco(), key.NewDisco()
	wg := func(typ byte, n int) []byte { p := make([]byte, n); p[0] = typ; return p }
	tests := []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"ping", disco.Seal(a, b.Public(), &disco.Ping{TxID: disco.NewTxID(), NodeKey: key.NewNode().Public()}), true},
		{"pong", disco.Seal(a, b.Public(), &disco.Pong{TxID: disco.NewTxID()}), true},
		{"call-me-maybe", disco.Seal(a, b.Public(), &disco.CallMeMaybe{}), true},
		{"magic only", []byte(discoMagic), true},
		{"wireguard initiation", wg(1, 148), false},
		{"wireguard response", wg(2, 92), false},
		{"wireguard cookie", wg(3, 64), false},
		{"wireguard data", wg(4, 1280), false},
		{"short", []byte(discoMagic[:len(discoMagic)-1]), false},
		{"empty", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := looksDisco(tt.pkt); got != tt.want {
				t.Errorf("looksDisco = %v, want %v", got, tt.want)
			}
			if got := disco.Looks(tt.pkt); got != tt.want {
				t.Errorf("disco.Looks = %v, want %v (the relay's magic is out of date)", got, tt.want)
			}
		})
	}
}

// queueFixture is a real server with a destination client registered but
// no writer running, so that its queues fill as under congestion.
type queueFixture struct {
	s        *testRelay
	src, dst *sclient
}

func newQueueFixture(t *testing.T) *queueFixture {
	t.Helper()
	s := newRelay(t, ServerConfig{RateBytesPerSec: -1, QueueLen: 8})
	src := s.newSClient(key.NewNode().Public(), nil, nil, "src")
	dst := s.newSClient(key.NewNode().Public(), nil, nil, "dst")
	s.mu.Lock()
	s.clients[dst.key] = dst
	s.mu.Unlock()
	t.Cleanup(func() {
		s.mu.Lock()
		delete(s.clients, dst.key)
		s.mu.Unlock()
	})
	return &queueFixture{s: s, src: src, dst: dst}
}

// send has src relay pkt to dst, as a SendPacket frame would.
func (q *queueFixture) send(pkt []byte) {
	f := frame{typ: frameSendPacket, key: q.dst.key.Raw(), data: pkt}
	q.src.sendPacket(&f, packetHeaderSz+len(pkt))
}

// drain returns the packets dst's writer would write, in order.
func (q *queueFixture) drain() [][]byte {
	var out [][]byte
	for {
		b, _, ok := q.dst.next(true)
		if !ok {
			return out
		}
		out = append(out, b[packetHeaderSz:])
	}
}

func discoPkt(i byte) []byte { return append([]byte(discoMagic), i) }

func dataPkt(i byte) []byte { return []byte{4, 0, 0, 0, i} }

// TestDiscoSurvivesDataFlood: a flood of data for a congested client
// fills and overflows its data queue, but a disco message sent in the
// middle of it is kept and is written before the queued data.
func TestDiscoSurvivesDataFlood(t *testing.T) {
	q := newQueueFixture(t)
	for i := range 20 {
		q.send(dataPkt(byte(i)))
	}
	q.send(discoPkt(1))
	for i := range 20 {
		q.send(dataPkt(byte(100 + i)))
	}
	st := q.s.Stats()
	if st.DroppedQueueFull == 0 {
		t.Fatalf("the data flood dropped nothing (%+v); the test does not congest the queue", st)
	}
	got := q.drain()
	if len(got) == 0 || !bytes.Equal(got[0], discoPkt(1)) {
		t.Fatalf("first packet written = %x, want the disco message first", got[:min(1, len(got))])
	}
	if n := len(got) - 1; n != 8 {
		t.Errorf("%d data packets queued, want the queue length 8", n)
	}
	if st.DroppedDiscoOldest != 0 {
		t.Errorf("DroppedDiscoOldest = %d, want 0", st.DroppedDiscoOldest)
	}
}

// TestDiscoFloodDropsOldest: a flood of disco messages keeps the newest
// discoQueueLen of them, in order, and counts the dropped ones; data
// queued alongside is untouched.
func TestDiscoFloodDropsOldest(t *testing.T) {
	q := newQueueFixture(t)
	q.send(dataPkt(7))
	const n = 3 * discoQueueLen
	for i := range n {
		q.send(discoPkt(byte(i)))
	}
	got := q.drain()
	if len(got) != discoQueueLen+1 {
		t.Fatalf("%d packets queued, want %d disco + 1 data", len(got), discoQueueLen)
	}
	for i := range discoQueueLen {
		if want := discoPkt(byte(n - discoQueueLen + i)); !bytes.Equal(got[i], want) {
			t.Errorf("disco #%d = %x, want %x (the newest, oldest first)", i, got[i], want)
		}
	}
	if !bytes.Equal(got[discoQueueLen], dataPkt(7)) {
		t.Errorf("last = %x, want the data packet", got[discoQueueLen])
	}
	st := q.s.Stats()
	if st.DroppedDiscoOldest != n-discoQueueLen || st.DroppedQueueFull != 0 {
		t.Errorf("DroppedDiscoOldest = %d, DroppedQueueFull = %d; want %d, 0", st.DroppedDiscoOldest, st.DroppedQueueFull, n-discoQueueLen)
	}
}

// TestDiscoShareInBatch: once a batch had its share of disco, data goes
// first, so a disco flood cannot starve data.
func TestDiscoShareInBatch(t *testing.T) {
	q := newQueueFixture(t)
	q.send(discoPkt(1))
	q.send(dataPkt(2))
	if b, data, ok := q.dst.next(false); !ok || !data || !bytes.Equal(b[packetHeaderSz:], dataPkt(2)) {
		t.Fatalf("next(false) = %x, data %v; want the data packet", b, data)
	}
	if b, data, ok := q.dst.next(false); !ok || data || !bytes.Equal(b[packetHeaderSz:], discoPkt(1)) {
		t.Fatalf("next(false) = %x, data %v; want the disco packet once no data is left", b, data)
	}
}
