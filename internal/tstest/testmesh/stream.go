package testmesh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/poll"
)

// Stream is one TCP connection through the tunnels, from one node to a
// listener on another, that carries data at a steady pace until the test
// ends: a failover test counts its bytes before and after an event and
// checks that it never broke. Its goroutines end with the test.
type Stream struct {
	mu       sync.Mutex
	received int64
	last     time.Time     // when bytes last arrived
	maxGap   time.Duration // longest time without bytes since MarkGap
	err      error         // why the stream broke; nil while it flows
}

// streamChunk is written every streamPace: about 800 KB/s, enough to see
// any stall, little enough for a loaded 2-core machine.
const (
	streamChunk = 8 << 10
	streamPace  = 10 * time.Millisecond
	// streamWait bounds the set-up waits: generous, as under the race
	// detector a loaded machine is slow.
	streamWait = 20 * time.Second
)

// StartStream opens the stream from src to dst's port (both need
// DataPlane and a netmap) and returns once its first bytes arrived.
func StartStream(t testing.TB, src, dst *Node, port uint16) *Stream {
	t.Helper()
	ln, err := dst.Engine().ListenTCP(port)
	if err != nil {
		t.Fatalf("testmesh: stream: listen on %s: %v", dst.Name, err)
	}
	to := netip.AddrPortFrom(dst.Engine().Addresses()[0].Addr(), port)
	ctx, cancel := context.WithCancel(context.Background())
	s := &Stream{last: time.Now()}
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); ln.Close(); wg.Wait() })
	accepted := make(chan net.Conn, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			s.fail(fmt.Errorf("accept: %w", err))
			close(accepted)
			return
		}
		context.AfterFunc(ctx, func() { c.Close() })
		accepted <- c
		s.read(c)
	}()
	dctx, dcancel := context.WithTimeout(ctx, streamWait)
	c, err := src.Engine().DialContext(dctx, "tcp", to)
	dcancel()
	if err != nil {
		t.Fatalf("testmesh: stream %s -> %s: %v", src.Name, to, err)
	}
	context.AfterFunc(ctx, func() { c.Close() })
	wg.Add(1)
	go func() { defer wg.Done(); s.write(ctx, c) }()
	if <-accepted == nil {
		t.Fatalf("testmesh: stream: %v", s.Err())
	}
	s.WaitReceived(t, 1, streamWait)
	return s
}

// write sends a chunk every streamPace until ctx ends.
func (s *Stream) write(ctx context.Context, c net.Conn) {
	buf := make([]byte, streamChunk)
	tick := time.NewTicker(streamPace)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if _, err := c.Write(buf); err != nil {
			if ctx.Err() == nil {
				s.fail(fmt.Errorf("write: %w", err))
			}
			return
		}
	}
}

// read counts what arrives until the connection ends.
func (s *Stream) read(c net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		now := time.Now()
		s.mu.Lock()
		s.received += int64(n)
		if n > 0 {
			s.maxGap = max(s.maxGap, now.Sub(s.last))
			s.last = now
		}
		s.mu.Unlock()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.fail(fmt.Errorf("read: %w", err))
			}
			return
		}
	}
}

func (s *Stream) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

// Received returns how many bytes arrived so far.
func (s *Stream) Received() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.received
}

// Err returns why the stream broke (a reset, a closed connection), or nil
// while it flows.
func (s *Stream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// MarkGap starts measuring the longest pause between arrivals afresh.
func (s *Stream) MarkGap() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxGap = 0
}

// MaxGap returns the longest pause between arrivals since MarkGap (for
// the test's log: a measurement, not something to assert on).
func (s *Stream) MaxGap() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return max(s.maxGap, time.Since(s.last))
}

// WaitReceived waits until n more bytes than now arrived, failing the
// test if the stream breaks or they do not come within timeout.
func (s *Stream) WaitReceived(t testing.TB, n int64, timeout time.Duration) {
	t.Helper()
	from := s.Received()
	poll.Until(t, timeout, fmt.Sprintf("%d more bytes on the stream", n), func() error {
		if err := s.Err(); err != nil {
			t.Fatalf("testmesh: the stream broke: %v", err)
		}
		if got := s.Received() - from; got < n {
			return fmt.Errorf("%d bytes so far", got)
		}
		return nil
	})
}

// CheckFlowing fails the test unless the stream is still unbroken.
func (s *Stream) CheckFlowing(t testing.TB) {
	t.Helper()
	if err := s.Err(); err != nil {
		t.Fatalf("testmesh: the stream broke: %v", err)
	}
}
