package noise

import (
	"bytes"
	"io"
	"testing"
)

// TestConnKeepsNoLargeBuffer: after a large write and a large read, a
// connection holds no buffer the size of those messages (a coordinator
// keeps thousands of idle connections; each would keep the largest map it
// ever sent), and small writes still reuse theirs.
func TestConnKeepsNoLargeBuffer(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
	}{
		{"small", 100},
		{"one message", 8 << 10},
		{"several messages", 3 * MaxPlaintext},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, server, _ := pipePair(t, 64)
			defer client.Close()
			defer server.Close()
			msg := bytes.Repeat([]byte{7}, tc.size)
			done := make(chan error, 1)
			go func() {
				_, err := server.Write(msg)
				done <- err
			}()
			got := make([]byte, tc.size)
			if _, err := io.ReadFull(client, got); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, msg) {
				t.Fatal("read back something else")
			}
			server.wmu.Lock()
			wcap := cap(server.wbuf)
			server.wmu.Unlock()
			client.rmu.Lock()
			rcap := cap(client.rbuf)
			client.rmu.Unlock()
			if wcap > keepBuffer {
				t.Errorf("writer keeps a %d-byte buffer, want at most %d", wcap, keepBuffer)
			}
			if rcap != 0 {
				t.Errorf("reader keeps a %d-byte buffer once everything was read, want none", rcap)
			}
		})
	}
}
