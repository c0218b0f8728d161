package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestSmallBuffersKeepEarlyBytes: a client that sends its first websocket
// frame in the same write as its upgrade request (net/http has then read
// the frame into its own buffer) has it read, whether it fits in the small
// buffer or not, and an answer larger than the buffer arrives whole.
func TestSmallBuffersKeepEarlyBytes(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
	}{
		{"small", 10},
		{"larger than the buffer", 3 * connBuffer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			echoed := make(chan error, 1)
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ws, err := websocket.Accept(smallBuffers{ResponseWriter: w, size: connBuffer}, r, nil)
				if err != nil {
					echoed <- err
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				typ, b, err := ws.Read(ctx)
				if err == nil {
					err = ws.Write(ctx, typ, b)
				}
				echoed <- err
				_ = ws.CloseNow()
			}))
			defer hs.Close()

			c, err := net.Dial("tcp", strings.TrimPrefix(hs.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(wait))
			payload := bytes.Repeat([]byte("warren"), tc.size/6+1)[:tc.size]
			req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
				"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
			// One write: the request and a masked binary frame.
			if _, err := c.Write(append([]byte(req), maskedFrame(payload)...)); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("upgrade answered %s", resp.Status)
			}
			got, err := readFrame(br)
			if err != nil {
				t.Fatalf("read the echo: %v (server: %v)", err, <-echoed)
			}
			if err := <-echoed; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, payload) {
				t.Fatalf("echo of %d bytes came back as %d bytes", len(payload), len(got))
			}
		})
	}
}

// maskedFrame is one final binary frame as a client sends it.
func maskedFrame(p []byte) []byte {
	f := []byte{0x82}
	switch {
	case len(p) < 126:
		f = append(f, 0x80|byte(len(p)))
	default:
		f = append(f, 0x80|126)
		f = binary.BigEndian.AppendUint16(f, uint16(len(p)))
	}
	mask := [4]byte{1, 2, 3, 4}
	f = append(f, mask[:]...)
	for i, b := range p {
		f = append(f, b^mask[i%4])
	}
	return f
}

// readFrame reads one unmasked binary frame, as a server sends it.
func readFrame(r io.Reader) ([]byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := int(h[1] & 0x7f)
	if n == 126 {
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return nil, err
		}
		n = int(binary.BigEndian.Uint16(l[:]))
	}
	p := make([]byte, n)
	_, err := io.ReadFull(r, p)
	return p, err
}
