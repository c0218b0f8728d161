package derp

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/crypto/nacl/box"

	"github.com/warrenmesh/warren/internal/key"
)

// validFrames returns one encoded frame of every type, for seeds and
// round-trip tests.
func validFrames(t testing.TB) map[string][]byte {
	t.Helper()
	k := key.NewNode().Public().Raw()
	frames := map[string]frame{
		"ServerHello":  {typ: frameServerHello, key: k, challenge: [32]byte{1, 2, 3}},
		"ClientHello":  {typ: frameClientHello, key: k, nonce: [24]byte{9}, data: make([]byte, minClientSeal+13)},
		"ServerInfo":   {typ: frameServerInfo, nonce: [24]byte{7}, data: make([]byte, minServerSeal+20)},
		"SendPacket":   {typ: frameSendPacket, key: k, data: []byte("wireguard ciphertext")},
		"SendEmpty":    {typ: frameSendPacket, key: k},
		"SendMax":      {typ: frameSendPacket, key: k, data: make([]byte, MaxPacketSize)},
		"RecvPacket":   {typ: frameRecvPacket, key: k, data: []byte{0xff}},
		"PeerGone":     {typ: framePeerGone, key: k, reason: PeerGoneNotHere},
		"PeerGoneNew":  {typ: framePeerGone, key: k, reason: 200},
		"KeepAlive":    {typ: frameKeepAlive},
		"Ping":         {typ: framePing, ping: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}},
		"Pong":         {typ: framePong, ping: [8]byte{8}},
		"Error":        {typ: frameError, data: []byte("not admitted by the coordinator")},
		"ErrorEmpty":   {typ: frameError},
		"ErrorUnicode": {typ: frameError, data: []byte("refusé ✓")},
	}
	out := make(map[string][]byte)
	for name, f := range frames {
		b, err := appendFrame(nil, &f)
		if err != nil {
			t.Fatalf("encode %s: %v", name, err)
		}
		out[name] = b
	}
	return out
}

func TestFrameRoundTrip(t *testing.T) {
	for name, b := range validFrames(t) {
		t.Run(name, func(t *testing.T) {
			var f frame
			if err := decodeFrame(b, &f); err != nil {
				t.Fatalf("decode: %v", err)
			}
			again, err := appendFrame(nil, &f)
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			if !bytes.Equal(again, b) {
				t.Fatalf("round trip changed the frame:\n got %x\nwant %x", again, b)
			}
		})
	}
}

func TestDecodeFrameRejects(t *testing.T) {
	k := make([]byte, key.Size)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "empty frame"},
		{"unknown type", []byte{0x63, 1, 2}, "unknown frame type 0x63"},
		{"type zero", []byte{0}, "unknown frame type 0x00"},
		{"short hello", cat([]byte{1}, k), "ServerHello frame body is 32 bytes, want 64"},
		{"long hello", cat([]byte{1}, k, k, []byte{0}), "want 64"},
		{"short send", cat([]byte{4}, k[:31]), "SendPacket frame body is 31 bytes"},
		{"oversize send", cat([]byte{4}, k, make([]byte, MaxPacketSize+1)), "want 32 to 65568"},
		{"oversize recv", cat([]byte{5}, k, make([]byte, MaxPacketSize+1)), "RecvPacket"},
		{"peergone short", cat([]byte{6}, k), "want 33"},
		{"keepalive body", []byte{7, 0}, "KeepAlive frame body is 1 bytes, want 0"},
		{"ping short", []byte{8, 1, 2, 3}, "want 8"},
		{"pong long", []byte{9, 1, 2, 3, 4, 5, 6, 7, 8, 9}, "Pong frame body is 9 bytes, want 8"},
		{"error long", cat([]byte{10}, bytes.Repeat([]byte("x"), maxErrorText+1)), "want 0 to 1024"},
		{"error not utf8", []byte{10, 0xff, 0xfe}, "not UTF-8"},
		{"client hello short box", cat([]byte{2}, k, make([]byte, nonceLen+box.Overhead)), "ClientHello"},
		{"client hello huge box", cat([]byte{2}, k, make([]byte, nonceLen+maxClientSeal+1)), "ClientHello"},
		{"server info short box", cat([]byte{3}, make([]byte, nonceLen+box.Overhead)), "ServerInfo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f frame
			err := decodeFrame(tt.in, &f)
			if err == nil {
				t.Fatalf("decode accepted %x", tt.in)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestAppendFrameRejects(t *testing.T) {
	tests := []struct {
		name string
		f    frame
	}{
		{"unknown", frame{typ: 0x42}},
		{"oversize packet", frame{typ: frameSendPacket, data: make([]byte, MaxPacketSize+1)}},
		{"short client box", frame{typ: frameClientHello, data: make([]byte, 3)}},
		{"long server box", frame{typ: frameServerInfo, data: make([]byte, maxServerSeal+1)}},
		{"error not utf8", frame{typ: frameError, data: []byte{0xc3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if b, err := appendFrame(nil, &tt.f); err == nil {
				t.Fatalf("encoded %x", b)
			}
		})
	}
}

func TestErrorFrameTruncates(t *testing.T) {
	text := strings.Repeat("é", maxErrorText) // 2 bytes each
	var f frame
	if err := decodeFrame(errorFrame(text), &f); err != nil {
		t.Fatalf("decode truncated error frame: %v", err)
	}
	if len(f.data) > maxErrorText || len(f.data)%2 != 0 {
		t.Fatalf("text cut badly: %d bytes", len(f.data))
	}
}

// FuzzDecodeFrame checks that decoding never panics and that every frame
// it accepts encodes back to the same bytes. Inputs over 4 KiB are left to
// the table tests above (maximal and oversize frames): the fuzzer spends
// minutes minimizing each large input that finds a length branch.
func FuzzDecodeFrame(f *testing.F) {
	for _, b := range validFrames(f) {
		if len(b) < 4096 {
			f.Add(b)
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 4<<10 {
			return
		}
		var fr frame
		if err := decodeFrame(b, &fr); err != nil {
			return
		}
		again, err := appendFrame(nil, &fr)
		if err != nil {
			t.Fatalf("decoded frame %v does not encode: %v", fr.typ, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("round trip changed the frame:\n got %x\nwant %x", again, b)
		}
	})
}
