package derp

import (
	"bytes"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/warrenmesh/warren/internal/key"
)

// TestHostileInputs sends malformed, oversize and out-of-place frames,
// before and after the handshake. Each connection must be closed (with
// an Error frame saying why, where the relay can still write one), the
// relay must keep serving others, and every goroutine of the hostile
// connections must return.
func TestHostileInputs(t *testing.T) {
	relay := newRelay(t, ServerConfig{})
	relay.handshakeTimeout = 200 * time.Millisecond
	before := goleak.IgnoreCurrent()

	raw := key.NewNode().Public().Raw()
	k := raw[:]
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name      string
		handshake bool   // complete the handshake first
		text      bool   // send as a text message
		msg       []byte // nil: send nothing
		want      string // in the Error frame; "" for none expected
	}{
		{"text before hello", false, true, []byte("hello"), "handshake failed: text message"},
		{"garbage before hello", false, false, []byte{0x63, 1, 2, 3}, "handshake failed: derp: unknown frame type 0x63"},
		{"empty message", false, false, []byte{}, "handshake failed: derp: empty frame"},
		{"packet before hello", false, false, cat([]byte{byte(frameSendPacket)}, k, []byte("x")), "want ClientHello, got SendPacket"},
		{"truncated hello", false, false, cat([]byte{byte(frameClientHello)}, k), "ClientHello frame body"},
		{"oversize before hello", false, false, make([]byte, maxHandshakeFrame+100), ""},
		{"silence", false, false, nil, ""},
		{"unknown type", true, false, []byte{0x7f}, "protocol error: derp: unknown frame type 0x7f"},
		{"text after hello", true, true, []byte("hi"), "protocol error: text message"},
		{"short packet", true, false, []byte{byte(frameSendPacket), 1, 2, 3}, "SendPacket frame body is 3 bytes"},
		{"server frame from client", true, false, cat([]byte{byte(frameServerHello)}, k, k), "unexpected ServerHello frame"},
		{"error frame from client", true, false, []byte{byte(frameError), 'x'}, "unexpected Error frame"},
		{"oversize frame", true, false, make([]byte, maxFrameSize+1), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rawDial(t, relay.url)
			if tt.handshake {
				r.handshake(key.NewNode())
			} else {
				r.mustRead(frameServerHello)
			}
			if tt.msg != nil {
				typ := websocket.MessageBinary
				if tt.text {
					typ = websocket.MessageText
				}
				// The relay may close while a large message is still
				// being written; that error is expected.
				_ = r.conn.Write(testCtx(t), typ, tt.msg)
			}
			text := r.expectClosed()
			if !strings.Contains(text, tt.want) {
				t.Fatalf("Error frame %q, want it to contain %q", text, tt.want)
			}
			r.conn.CloseNow()
		})
	}

	// An upgrade without the subprotocol is refused before the websocket.
	_, resp, err := websocket.Dial(testCtx(t), relay.url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("dial without subprotocol: %v", err)
	}
	// A broken upgrade request.
	req, _ := http.NewRequest("GET", relay.url, nil)
	req.Header.Set("Upgrade", "websocket")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode/100 != 4 {
		t.Fatalf("bad upgrade: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	http.DefaultClient.CloseIdleConnections()

	goleak.VerifyNone(t, before)
	st := relay.Stats()
	if st.HandshakeFailures != 9 || st.ProtocolErrors != 6 || st.Clients != 0 {
		t.Fatalf("stats %+v", st)
	}

	// The relay still works.
	ka, kb := key.NewNode(), key.NewNode()
	a, b := relay.dial(t, ka), relay.dial(t, kb)
	if err := a.Send(testCtx(t), kb.Public(), []byte("fine")); err != nil {
		t.Fatal(err)
	}
	if got := recvPacket(t, b); string(got.Data) != "fine" {
		t.Fatalf("got %q", got.Data)
	}
}

// TestFlood blasts packets at a client that never reads. The relay must
// drop (and count) what does not fit in the destination's bounded queue,
// its memory must stay bounded, and another pair must keep working.
func TestFlood(t *testing.T) {
	const queueLen = 16
	relay := newRelay(t, ServerConfig{QueueLen: queueLen, RateBytesPerSec: -1})
	kFlood, kSink := key.NewNode(), key.NewNode()
	flooder := relay.dial(t, kFlood)
	relay.dial(t, kSink) // never reads
	ka, kb := key.NewNode(), key.NewNode()
	a, b := relay.dial(t, ka), relay.dial(t, kb)

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heapBefore := ms.HeapAlloc

	ctx := testCtx(t)
	pkt := make([]byte, 1280)
	const total = 20000 // 25 MB, far more than socket buffers and queue hold
	done := make(chan error, 1)
	sinkPub := kSink.Public() // Public() is an X25519 operation: not in the loop
	go func() {
		for range total {
			if err := flooder.Send(ctx, sinkPub, pkt); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	// Meanwhile another pair talks.
	for i := range 100 {
		if err := a.Send(ctx, kb.Public(), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if got := recvPacket(t, b); got.Data[0] != byte(i) {
			t.Fatalf("packet %d: got %d", i, got.Data[0])
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("flood: %v", err)
	}
	barrier(t, flooder)

	runtime.GC()
	runtime.ReadMemStats(&ms)
	if grew := int64(ms.HeapAlloc) - int64(heapBefore); grew > 16<<20 {
		t.Errorf("heap grew by %d MiB under the flood", grew>>20)
	}
	sink := relay.lookup(kSink.Public())
	if q := sink.queued.Load(); q > int64(queueLen*(1280+packetHeaderSz)) {
		t.Errorf("sink queue holds %d bytes", q)
	}
	st := relay.Stats()
	if st.DroppedQueueFull == 0 {
		t.Fatalf("no drops counted: %+v", st)
	}
	// Every packet is forwarded, dropped, or still queued for the sink
	// (up to queueLen, plus one in its writer's hands).
	if pending := total + 100 - int(st.DroppedQueueFull+st.FramesForwarded); pending < 0 || pending > queueLen+1 {
		t.Fatalf("forwarded %d + dropped %d, sent %d", st.FramesForwarded, st.DroppedQueueFull, total+100)
	}
	t.Logf("flood: %d forwarded, %d dropped (queue full)", st.FramesForwarded, st.DroppedQueueFull)
}

func TestRateLimit(t *testing.T) {
	// 100 KB/s with a burst of one maximal frame: a burst of small frames
	// soon runs dry, and the per-frame overhead counts too.
	relay := newRelay(t, ServerConfig{RateBytesPerSec: 100_000, RateBurst: maxFrameSize + FrameOverhead})
	ka, kb := key.NewNode(), key.NewNode()
	a := relay.dial(t, ka)
	relay.dial(t, kb)
	ctx := testCtx(t)
	const n = 2000 // 2000 empty packets cost 2000*(33+64) = 194 KB > burst
	dst := kb.Public()
	for range n {
		if err := a.Send(ctx, dst, nil); err != nil {
			t.Fatal(err)
		}
	}
	barrier(t, a)
	st := relay.Stats()
	if st.DroppedRateLimited == 0 || st.DroppedRateLimited >= n {
		t.Fatalf("stats %+v", st)
	}
}
