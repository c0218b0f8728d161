package noise

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
)

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// exchange writes data on w in one Write while reading it back from r, and
// checks it arrives intact.
func exchange(t *testing.T, w io.Writer, r io.Reader, data []byte) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := w.Write(data)
		errc <- err
	}()
	got := make([]byte, len(data))
	_, rerr := io.ReadFull(r, got)
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if rerr != nil {
		t.Fatalf("read: %v", rerr)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("data corrupted in transit")
	}
}

func TestConnRoundTrip(t *testing.T) {
	for _, size := range []int{1, 100, MaxPlaintext - 1, MaxPlaintext, MaxPlaintext + 1, 3*MaxPlaintext + 7, 1 << 20} {
		client, server, _ := pipePair(t, 2)
		data := randomBytes(t, size)
		exchange(t, client, server, data)
		exchange(t, server, client, data)
	}
}

func TestConnWriteSplitsMessages(t *testing.T) {
	tests := []struct {
		size int
		want []int // ciphertext sizes
	}{
		{0, nil},
		{1, []int{1 + tagSize}},
		{MaxPlaintext, []int{MaxMessage}},
		{MaxPlaintext + 1, []int{MaxMessage, 1 + tagSize}},
		{2 * MaxPlaintext, []int{MaxMessage, MaxMessage}},
	}
	for _, tt := range tests {
		client, _, tap := pipePair(t, 1)
		tap.setHold(true)
		before := len(tap.written())
		if n, err := client.Write(make([]byte, tt.size)); n != tt.size || err != nil {
			t.Fatalf("Write(%d bytes) = %d, %v", tt.size, n, err)
		}
		var got []int
		for _, m := range tap.written()[before:] {
			got = append(got, len(m))
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Write(%d bytes) sent messages of %v bytes, want %v", tt.size, got, tt.want)
		}
	}
}

func TestConnConcurrentWrites(t *testing.T) {
	client, server, _ := pipePair(t, 4)
	const writers = 8
	blocks := make([][]byte, writers)
	for i := range blocks {
		// Each block is one byte value repeated, over several messages.
		blocks[i] = bytes.Repeat([]byte{byte(i)}, 2*MaxPlaintext+i)
	}
	var wg sync.WaitGroup
	errc := make(chan error, writers)
	for _, b := range blocks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := client.Write(b); err != nil {
				errc <- err
			}
		}()
	}
	seen := make(map[byte]bool)
	for range writers {
		var first [1]byte
		if _, err := io.ReadFull(server, first[:]); err != nil {
			t.Fatal(err)
		}
		rest := make([]byte, len(blocks[first[0]])-1)
		if _, err := io.ReadFull(server, rest); err != nil {
			t.Fatal(err)
		}
		if seen[first[0]] || bytes.Count(rest, first[:]) != len(rest) {
			t.Fatalf("block %d interleaved with another write", first[0])
		}
		seen[first[0]] = true
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}

func TestConnRejectsTamperedMessages(t *testing.T) {
	flip := func(m []byte) []byte {
		m = bytes.Clone(m)
		m[len(m)/2] ^= 0x80
		return m
	}
	tests := []struct {
		name    string
		deliver func(m0, m1 []byte) [][]byte
		want    []string // plaintexts read before the error; all of them means no error
		errText string
	}{
		{"in order (control)", func(m0, m1 []byte) [][]byte { return [][]byte{m0, m1} }, []string{"first", "second"}, ""},
		{"replayed", func(m0, m1 []byte) [][]byte { return [][]byte{m0, m0} }, []string{"first"}, "decrypt message"},
		{"reordered", func(m0, m1 []byte) [][]byte { return [][]byte{m1, m0} }, nil, "decrypt message"},
		{"dropped", func(m0, m1 []byte) [][]byte { return [][]byte{m1} }, nil, "decrypt message"},
		{"bit flipped", func(m0, m1 []byte) [][]byte { return [][]byte{flip(m0)} }, nil, "decrypt message"},
		{"truncated", func(m0, m1 []byte) [][]byte { return [][]byte{m0[:len(m0)-1]} }, nil, "decrypt message"},
		{"shorter than tag", func(m0, m1 []byte) [][]byte { return [][]byte{m0[:tagSize-1]} }, nil, "shorter than the 16-byte tag"},
		{"empty", func(m0, m1 []byte) [][]byte { return [][]byte{{}} }, nil, "shorter than the 16-byte tag"},
		{"oversized", func(m0, m1 []byte) [][]byte { return [][]byte{make([]byte, MaxMessage+1)} }, nil, "longer than the 65535-byte maximum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server, tap := pipePair(t, 4)
			tap.setHold(true) // capture the client's messages instead of sending them
			for _, s := range []string{"first", "second"} {
				if _, err := client.Write([]byte(s)); err != nil {
					t.Fatal(err)
				}
			}
			w := tap.written()
			m0, m1 := w[len(w)-2], w[len(w)-1]
			for _, m := range tt.deliver(m0, m1) {
				if err := tap.MessageConn.WriteMessage(context.Background(), m); err != nil {
					t.Fatal(err)
				}
			}
			for _, want := range tt.want {
				buf := make([]byte, 100)
				n, err := server.Read(buf)
				if err != nil || string(buf[:n]) != want {
					t.Fatalf("Read = %q, %v, want %q", buf[:n], err, want)
				}
			}
			if tt.errText == "" {
				return
			}
			for range 2 { // the error is sticky
				n, err := server.Read(make([]byte, 100))
				if err == nil || !strings.Contains(err.Error(), "noise: decrypt message") || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("Read = %d, %v, want an error containing %q", n, err, tt.errText)
				}
			}
		})
	}
}

func TestConnCloseUnblocks(t *testing.T) {
	tests := []struct {
		name string
		op   func(c *Conn) error
		want string // which MessageConn call the op blocks in
	}{
		{"Read", func(c *Conn) error { _, err := c.Read(make([]byte, 1)); return err }, "read"},
		{"Write", func(c *Conn) error {
			// Unbuffered pipe and nobody reading: blocks in the first message.
			_, err := c.Write(make([]byte, 1))
			return err
		}, "write"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, _, tap := pipePair(t, 0)
			tap.entered = make(chan string, 1) // set before any concurrent use
			errc := make(chan error, 1)
			go func() { errc <- tt.op(client) }()
			if got := <-tap.entered; got != tt.want {
				t.Fatalf("op entered %s, want %s", got, tt.want)
			}
			if err := client.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			mustErrorIs(t, <-errc, net.ErrClosed)
			mustErrorIs(t, tt.op(client), net.ErrClosed)
			if err := client.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}
}

func TestConnPeerCloseIsEOF(t *testing.T) {
	client, server, _ := pipePair(t, 2)
	if _, err := client.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	client.Close()
	got, err := io.ReadAll(server)
	if err != nil || string(got) != "bye" {
		t.Fatalf("ReadAll = %q, %v, want \"bye\", nil", got, err)
	}
	if _, err := server.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("Read after EOF = %v, want io.EOF", err)
	}
	if _, err := server.Write([]byte("x")); err == nil {
		t.Error("Write to a closed peer succeeded")
	}
}

func TestConnZeroLength(t *testing.T) {
	client, server, tap := pipePair(t, 2)
	before := len(tap.written())
	if n, err := client.Write(nil); n != 0 || err != nil {
		t.Fatalf("Write(nil) = %d, %v", n, err)
	}
	if len(tap.written()) != before {
		t.Error("Write(nil) sent a message")
	}
	if n, err := server.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v", n, err)
	}
	// An empty transport message (a peer may send one) is skipped by Read.
	empty, err := client.send.Encrypt(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tap.MessageConn.WriteMessage(context.Background(), empty); err != nil {
		t.Fatal(err)
	}
	exchange(t, client, server, []byte("after empty"))
}
