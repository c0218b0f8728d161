package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"
)

func FuzzParseSOCKSRequest(f *testing.F) {
	seeds := [][]byte{
		{5, 1, 0, 1, 127, 0, 0, 1, 0, 80},
		{5, 1, 0, 3, 2, 'd', 'b', 0x15, 0x38},
		append(append([]byte{5, 1, 0, 4}, netip.IPv6Loopback().AsSlice()...), 0, 22),
		{5, 1, 0, 3, 0, 0, 80},
		{5, 1, 0, 3, 255},
		{5, 2, 7, 9},
		{4, 1, 0, 1},
		{},
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		req, err := ParseSOCKSRequest(r)
		if err != nil {
			if req != (SOCKSRequest{}) {
				t.Fatalf("error %v with non-zero request %+v", err, req)
			}
			return
		}
		consumed := in[:len(in)-r.Len()]
		enc := encodeSOCKSRequest(req)
		again, err := ParseSOCKSRequest(bytes.NewReader(enc))
		if err != nil || again != req {
			t.Fatalf("re-parse of %x = %+v, %v; want %+v", enc, again, err, req)
		}
		// The encoding is canonical except for the reserved byte.
		canon := bytes.Clone(consumed)
		canon[2] = 0
		if !bytes.Equal(enc, canon) {
			t.Fatalf("parse(%x) = %+v encodes as %x", consumed, req, enc)
		}
		if (req.Host == "") == !req.Addr.IsValid() {
			t.Fatalf("exactly one of Host and Addr must be set: %+v", req)
		}
	})
}

// fuzzDialer stands in for the netstack: even ports refuse, odd ports get
// an in-memory echo peer. wg tracks the peers.
func fuzzDialer(wg *sync.WaitGroup) Dialer {
	return func(_ context.Context, _ string, addr netip.AddrPort) (net.Conn, error) {
		if addr.Port()%2 == 0 {
			return nil, syscall.ECONNREFUSED
		}
		c, peer := net.Pipe()
		wg.Go(func() {
			defer peer.Close()
			_, _ = io.Copy(peer, peer)
		})
		return c, nil
	}
}

func FuzzServeConn(f *testing.F) {
	greet := []byte{5, 1, 0}
	seeds := [][]byte{
		append(bytes.Clone(greet), 5, 1, 0, 1, 100, 64, 0, 1, 0, 81, 'h', 'i'),
		append(bytes.Clone(greet), 5, 1, 0, 3, 2, 'd', 'b', 0, 80),
		append(bytes.Clone(greet), 5, 1, 0, 3, 3, 'w', 'e', 'b', 0, 81, 'x'),
		append(bytes.Clone(greet), 5, 2, 0, 1, 1, 2, 3, 4, 0, 1),
		{5, 0},
		{5, 255, 1, 2, 3},
		[]byte("CONNECT db:81 HTTP/1.1\r\nHost: db:81\r\n\r\nhello"),
		[]byte("CONNECT db2:81 HTTP/1.1\r\n\r\n"),
		[]byte("GET http://web:81/x HTTP/1.1\r\nHost: web\r\n\r\n"),
		[]byte("POST http://web:81/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
		[]byte("GET http://web:81/ HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n"),
		[]byte("\x00\xff\r\n\r\n"),
		{4, 1, 0, 80},
	}
	for _, s := range seeds {
		f.Add(s)
	}
	var peers sync.WaitGroup
	s, err := New(Config{
		Dial: fuzzDialer(&peers),
		Resolve: mapResolver(map[string]netip.Addr{
			"db":  netip.MustParseAddr("100.64.0.1"),
			"web": netip.MustParseAddr("fd7a:115c:a1e0::1"),
		}),
		DialTimeout: time.Second,
	})
	if err != nil {
		f.Fatal(err)
	}
	s.handshake = 100 * time.Millisecond
	f.Cleanup(func() {
		_ = s.Close()
		peers.Wait()
	})
	f.Fuzz(func(t *testing.T, in []byte) {
		client, server := net.Pipe()
		_ = client.SetDeadline(time.Now().Add(2 * time.Second))
		served := make(chan struct{})
		if !s.start(server, true, func() { close(served) }) {
			t.Fatal("server closed")
		}
		var wg sync.WaitGroup
		wg.Go(func() { // the client's bytes, then it hangs up
			_, _ = client.Write(in)
			_ = client.Close()
		})
		wg.Go(func() { _, _ = io.Copy(io.Discard, client) })
		wg.Wait()
		select {
		case <-served:
		case <-time.After(5 * time.Second):
			t.Fatalf("server still handling %q after the client left", in)
		}
	})
}

// TestFuzzDialerErrors pins the fuzz dialer's refusal to the reply it must
// produce, so the fuzz seeds exercise both paths.
func TestFuzzDialerErrors(t *testing.T) {
	var wg sync.WaitGroup
	_, err := fuzzDialer(&wg)(context.Background(), "tcp", netip.MustParseAddrPort("100.64.0.1:80"))
	if !errors.Is(err, syscall.ECONNREFUSED) || classify(err) != failRefused {
		t.Fatalf("even port: %v", err)
	}
	wg.Wait()
}
